// Small behaviours the dashboard needs; htmx does the rest.
document.addEventListener("change", (event) => {
  const el = event.target;
  if (el.matches("select[data-autosubmit]")) el.form.requestSubmit();
});
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const message = (button && button.getAttribute("data-confirm")) || event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) event.preventDefault();
});
// A table row names the actions it offers (data-actions); the page carries the menu and its form once
// (#instance-action-menu, #instance-action-form). Fill a row's menu as it opens, before Bootstrap shows it.
document.addEventListener("click", (event) => {
  const toggle = event.target.closest(".instance-actions[data-actions] > [data-bs-toggle]");
  const template = document.getElementById("instance-action-menu");
  if (!toggle || !template) return;
  const menu = toggle.parentElement.querySelector(".dropdown-menu");
  if (menu.childElementCount) return;
  const row = toggle.closest("tr");
  const id = row.id.replace(/^instance-/, "");
  const name = row.getAttribute("data-name");
  const offered = new Set(toggle.parentElement.getAttribute("data-actions").split(" "));
  for (const item of template.content.children) {
    if (!offered.has(item.getAttribute("data-action"))) continue;
    const entry = item.cloneNode(true);
    const button = entry.querySelector("button");
    button.setAttribute("formaction", button.getAttribute("data-url").replace("{id}", id));
    const confirm = button.getAttribute("data-confirm");
    if (confirm) button.setAttribute("data-confirm", confirm.replaceAll("{name}", name));
    menu.appendChild(entry);
  }
}, true);
