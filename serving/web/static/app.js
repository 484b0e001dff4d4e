// Keyboard shortcuts of the case page: c confirm, n next case, e edit (focus the change form).
// Loaded as a file (the pages' Content-Security-Policy allows no inline script).
(function () {
  "use strict";

  function typingIn(target) {
    if (!target) return false;
    var tag = (target.tagName || "").toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || typingIn(event.target)) {
      return;
    }
    var key = event.key;
    if (key === "c") {
      var confirmForm = document.getElementById("confirm-form");
      if (confirmForm) {
        event.preventDefault();
        if (confirmForm.requestSubmit) { confirmForm.requestSubmit(); } else { confirmForm.submit(); }
      }
    } else if (key === "n") {
      var next = document.getElementById("next-case");
      if (next) {
        event.preventDefault();
        window.location.assign(next.href);
      }
    } else if (key === "e") {
      var field = document.getElementById("department");
      if (field) {
        event.preventDefault();
        field.focus();
        field.scrollIntoView({ block: "center" });
      }
    }
  });
})();

// The queue's "select all" box ticks every case of the page for "confirm selected".
(function () {
  "use strict";
  var all = document.getElementById("select-all");
  if (!all) return;
  all.addEventListener("change", function () {
    var boxes = document.querySelectorAll("input.pick:not(:disabled)");
    for (var i = 0; i < boxes.length; i++) { boxes[i].checked = all.checked; }
  });
})();
