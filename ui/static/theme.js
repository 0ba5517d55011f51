// Applies the saved theme before the page paints (a classic script, so it runs at once).
// "light" or "dark" overrides the system preference; nothing saved follows the system.
(function () {
  try {
    var t = localStorage.getItem("espadmin-theme");
    if (t === "light" || t === "dark") document.documentElement.dataset.theme = t;
  } catch (e) { /* storage disabled: follow the system */ }
})();
