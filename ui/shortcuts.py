"""Keyboard shortcuts, as the script Gradio runs when the page loads: Ctrl+Enter (Cmd+Enter on a Mac) in
the Image tab's prompt boxes clicks Generate, as in AUTOMATIC1111 and Fooocus."""

SHORTCUTS_JS = """
() => {
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    const field = event.target && event.target.closest ? event.target.closest("#prompt, #negative-prompt") : null;
    const generate = document.querySelector("#generate");
    if (!field || !generate) return;
    event.preventDefault();
    event.stopImmediatePropagation();  // the text box's own Enter handling must not run too
    generate.click();
  }, true);
}
"""
