// The portal's only script (served by the portal; the CSP allows no other). Every page works
// without it; it adds: the "Pay this invoice" pop-up, one open three-dot menu at a time,
// Escape closing menus, the page-language select submitting itself, and the refresh of the
// "Generate Invoices" outcome while invoices are still being numbered.
"use strict";

document.documentElement.classList.add("js");

function closeMenus(except) {
  document.querySelectorAll("details.menu[open]").forEach((menu) => {
    if (menu !== except) menu.removeAttribute("open");
  });
}

document.addEventListener("toggle", (event) => {
  const menu = event.target;
  if (menu instanceof HTMLDetailsElement && menu.classList.contains("menu") && menu.open) {
    closeMenus(menu);
  }
}, true);

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const open = document.querySelector("details.menu[open]");
  if (open) {
    open.removeAttribute("open");
    open.querySelector("summary").focus();
  }
});

document.addEventListener("click", async (event) => {
  const link = event.target instanceof Element ? event.target.closest("a[data-popup]") : null;
  if (!link) {
    if (!(event.target instanceof Element && event.target.closest("details.menu"))) closeMenus(null);
    return;
  }
  event.preventDefault();
  const dialog = document.getElementById("popup");
  const body = document.getElementById("popup-body");
  const answer = await fetch(link.href, { headers: { "X-Fragment": "1" }, credentials: "same-origin" });
  if (!answer.ok) { window.location.href = link.href; return; }
  body.innerHTML = await answer.text();
  const opener = link.closest("details.menu");
  dialog.addEventListener("close", () => {
    if (opener) { opener.removeAttribute("open"); opener.querySelector("summary").focus(); }
  }, { once: true });
  dialog.showModal();
});

document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
  select.addEventListener("change", () => select.form.submit());
});

const refreshing = document.querySelector("[data-refresh]");
if (refreshing) {
  window.setTimeout(() => window.location.reload(), 1000 * Number(refreshing.dataset.refresh));
}
