//! The planner support function of the RLS helpers (`identity.uid()`,
//! `org_id()`, `is_service_user()`, `user_role()`, `is_admin()`,
//! `has_role(text)`, `has_scope(text)`, `claim(text)`).
//!
//! Written unwrapped in a policy (`user_id = identity.uid()`), a STABLE
//! function is called once per row. Supabase's linter asks every user to
//! wrap it by hand, `(select identity.uid())`, which the planner turns into
//! an InitPlan: evaluated once per execution, then a parameter per row. This
//! support function does that wrapping for them. Asked to simplify a call
//! (`SupportRequestSimplify`, during `eval_const_expressions`), it answers
//! the sublink `(SELECT <the call>)`; the planner then plans it exactly as
//! it plans the hand-written form (`SS_process_sublinks`): an uncorrelated
//! InitPlan.
//!
//! Why it stays correct:
//! - An InitPlan is evaluated at each execution, not at planning: a
//!   prepared statement's generic plan reads the claims of the execution
//!   that runs it.
//! - InitPlan results are computed by the leader and passed to parallel
//!   workers (they are parallel safe parameters of the Gather).
//! - It applies wherever the planner simplifies expressions with a planner
//!   context: policies (security quals), views, inlined SQL functions, and
//!   each statement of a non-inlined SQL function, planned on its own.
//! - It does not apply where nothing is evaluated per row or where there is
//!   no query to hold an InitPlan: a query that reads no relation (`select
//!   identity.uid()`, whose range table holds only the planner's RTE_RESULT,
//!   and the InitPlan's own query, which is how the rewrite does not
//!   recurse), a call whose arguments are not all
//!   constants (`has_role(t.role)` may differ per row), and any
//!   simplification without a planner context (`root` NULL: executor-only
//!   expressions, defaults, constraints).
//!
//! The helpers are STABLE: Postgres may already evaluate them once per
//! statement, so answering once per execution changes no documented result.

use pgrx::pg_sys;

/// The V1 info record of `identity_helper_support`.
#[no_mangle]
pub extern "C" fn pg_finfo_identity_helper_support() -> &'static pg_sys::Pg_finfo_record {
    &crate::pg::fmgr::V1
}

/// `identity.helper_support(internal) returns internal`.
///
/// # Safety
/// Called only by the function manager, as a planner support function: its
/// one argument is a pointer to a `SupportRequest*` node (the `internal`
/// argument of a support function, by Postgres' contract).
#[no_mangle]
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn identity_helper_support(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fcinfo is this call's info; a support function has exactly one
    // argument, a pointer to the request node (see the contract above).
    let request = unsafe {
        let args = (*fcinfo).args.as_slice(1);
        args[0].value.cast_mut_ptr::<pg_sys::Node>()
    };
    // SAFETY: the request is a live node for the duration of this call; the
    // planner context, the query and the call it names are live planner
    // nodes for the same duration.
    let answer = unsafe { simplify(request) };
    match answer {
        Some(node) => pg_sys::Datum::from(node),
        // A NULL pointer: "no simplification".
        None => pg_sys::Datum::from(0usize),
    }
}

/// The sublink to put in place of the call, or None to leave it be.
///
/// # Safety
/// `request` is NULL or a live `SupportRequest*` node whose pointers (the
/// planner context, its query, the call) are live or NULL.
unsafe fn simplify(request: *mut pg_sys::Node) -> Option<*mut pg_sys::Node> {
    // SAFETY: per the contract, every pointer followed here is NULL (checked
    // first) or a live node of the type its tag says.
    unsafe {
        if request.is_null() || (*request).type_ != pg_sys::NodeTag::T_SupportRequestSimplify {
            return None;
        }
        let req = request.cast::<pg_sys::SupportRequestSimplify>();
        let root = (*req).root;
        let call = (*req).fcall;
        if root.is_null() || call.is_null() {
            return None;
        }
        let parse = (*root).parse;
        if parse.is_null()
            || (*parse).commandType == pg_sys::CmdType::CMD_UTILITY
            || !reads_a_relation((*parse).rtable)
        {
            return None;
        }
        if !all_constants((*call).args) {
            return None;
        }
        Some(wrap(parse, call))
    }
}

/// Whether the range table has an entry other than RTE_RESULT (the one the
/// planner puts in an empty FROM: `select identity.uid()`, and the
/// InitPlan's own query, evaluate their target list once anyway).
///
/// # Safety
/// `rtable` is NULL (the empty list) or a live List of RangeTblEntry nodes.
unsafe fn reads_a_relation(rtable: *mut pg_sys::List) -> bool {
    if rtable.is_null() {
        return false;
    }
    // SAFETY: a live List has `length` initialised cells, each a live
    // RangeTblEntry of the query being planned.
    unsafe {
        (0..(*rtable).length as usize).any(|i| {
            let rte = (*(*rtable).elements.add(i))
                .ptr_value
                .cast::<pg_sys::RangeTblEntry>();
            !rte.is_null() && (*rte).rtekind != pg_sys::RTEKind::RTE_RESULT
        })
    }
}

/// Whether every element of `args` (a List of expression nodes) is a Const.
///
/// # Safety
/// `args` is NULL (the empty list) or a live List of nodes.
unsafe fn all_constants(args: *mut pg_sys::List) -> bool {
    if args.is_null() {
        return true;
    }
    // SAFETY: a live List has `length` initialised cells; each holds a live
    // node pointer (an expression list holds no NULLs).
    unsafe {
        (0..(*args).length as usize).all(|i| {
            let node = (*(*args).elements.add(i)).ptr_value.cast::<pg_sys::Node>();
            !node.is_null() && (*node).type_ == pg_sys::NodeTag::T_Const
        })
    }
}

/// `(SELECT <a copy of call>)` as an EXPR sublink, and the query marked as
/// having sublinks so the planner expands it (it checks that flag after
/// simplifying).
///
/// # Safety
/// `parse` and `call` are live; runs in the planner's memory context (palloc
/// may raise, which the entry point's #[pg_guard] turns into an ERROR).
unsafe fn wrap(parse: *mut pg_sys::Query, call: *mut pg_sys::FuncExpr) -> *mut pg_sys::Node {
    // SAFETY: every node is allocated zeroed in the current (planner) memory
    // context and given its tag before use, as makeNode() does; the call is
    // copied because the planner hands support functions a FuncExpr on its
    // own stack.
    unsafe {
        let expr = pg_sys::copyObjectImpl(call.cast()).cast::<pg_sys::Expr>();
        let entry = pg_sys::makeTargetEntry(expr, 1, pg_sys::pstrdup(c"helper".as_ptr()), false);
        let query = pg_sys::palloc0(std::mem::size_of::<pg_sys::Query>()).cast::<pg_sys::Query>();
        (*query).type_ = pg_sys::NodeTag::T_Query;
        (*query).commandType = pg_sys::CmdType::CMD_SELECT;
        (*query).querySource = pg_sys::QuerySource::QSRC_ORIGINAL;
        (*query).canSetTag = true;
        (*query).jointree = pg_sys::makeFromExpr(std::ptr::null_mut(), std::ptr::null_mut());
        (*query).targetList = pg_sys::lappend(std::ptr::null_mut(), entry.cast());
        let link =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::SubLink>()).cast::<pg_sys::SubLink>();
        (*link).xpr.type_ = pg_sys::NodeTag::T_SubLink;
        (*link).subLinkType = pg_sys::SubLinkType::EXPR_SUBLINK;
        (*link).subselect = query.cast();
        (*link).location = -1;
        (*parse).hasSubLinks = true;
        link.cast()
    }
}
