//! Row ids as newtypes, so a user id, an organization id and a session id
//! cannot be passed for each other. Each is the uuid's 16 bytes; the glue
//! converts at its boundary (`pgrx::Uuid` in, `text()` or bytes out).

use super::claims::uuid_text;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// The canonical lowercase text form.
            pub fn text(&self) -> String {
                uuid_text(&self.0)
            }

            /// The 16 bytes.
            pub const fn bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }
    };
}

id_type!(
    /// A user's id (identity.users.id), person or service user.
    UserId
);
id_type!(
    /// An organization's id (identity.organizations.id).
    OrgId
);
id_type!(
    /// A session's id (the `session_id` claim; identity.revoked_sessions).
    SessionId
);
id_type!(
    /// An API token's id (identity.api_tokens.id).
    TokenId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_prints_as_its_canonical_uuid() {
        let mut b = [0u8; 16];
        b[0] = 0xab;
        b[15] = 0x01;
        assert_eq!(UserId(b).text(), "ab000000-0000-0000-0000-000000000001");
        assert_eq!(OrgId(b).bytes(), &b);
    }
}
