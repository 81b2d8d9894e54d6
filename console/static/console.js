// identity console: the only script (served from the console itself, as the
// Content-Security-Policy requires). It copies a new token to the clipboard
// and asks before a revoke; every action works without it.
document.addEventListener('click', async (event) => {
  const button = event.target.closest('button.copy');
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    button.textContent = 'Copied';
  } catch (e) {
    // No clipboard (an insecure origin): select the text for a manual copy.
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = 'Selected: press Ctrl+C';
  }
});
document.addEventListener('submit', (event) => {
  const form = event.target;
  if (form.classList.contains('revoke') && !window.confirm('Revoke this token? Clients using it stop working at once.')) {
    event.preventDefault();
  }
});
