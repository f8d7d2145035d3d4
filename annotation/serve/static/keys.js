// Keyboard labeling on the item page: digit keys set the level of the highlighted dimension and move to the
// next one; arrows change dimension; Enter saves; s skips; f toggles the flag. Typing in the comment is left alone.
(function () {
  "use strict";
  var form = document.getElementById("label-form");
  if (!form) { return; }
  var dims = Array.prototype.slice.call(form.querySelectorAll("fieldset.dimension"));
  var saveButton = document.getElementById("submit-label");
  var skipButton = document.getElementById("skip");
  var current = 0;

  function activate(index) {
    current = Math.max(0, Math.min(index, dims.length - 1));
    dims.forEach(function (dim, i) { dim.classList.toggle("active", i === current); });
  }

  function firstUnanswered() {
    for (var i = 0; i < dims.length; i++) {
      if (!dims[i].querySelector("input[type=radio]:checked")) { return i; }
    }
    return -1;
  }

  dims.forEach(function (dim, i) {
    dim.addEventListener("focusin", function () { activate(i); });
    dim.addEventListener("click", function () { activate(i); });
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.target.closest && event.target.closest("textarea, input[type=text], input[type=password]")) { return; }
    var key = event.key;
    var radio = /^[0-9]$/.test(key) && dims[current].querySelector("input[type=radio][value='" + key + "']");
    if (radio) {
      event.preventDefault();
      radio.checked = true;
      var next = firstUnanswered();
      if (next === -1) { activate(dims.length - 1); saveButton.focus(); } else { activate(next); }
    } else if (key === "ArrowDown" || key === "ArrowUp") {
      if (event.target.type === "radio") { return; }  // arrows on a focused radio keep their usual meaning
      event.preventDefault();
      activate(current + (key === "ArrowDown" ? 1 : -1));
    } else if (key === "Enter" && event.target.tagName !== "BUTTON" && event.target.tagName !== "A") {
      event.preventDefault();
      form.requestSubmit(saveButton);
    } else if (key === "s") {
      event.preventDefault();
      form.requestSubmit(skipButton);
    } else if (key === "f") {
      event.preventDefault();
      var flag = document.getElementById("flagged");
      flag.checked = !flag.checked;
    }
  });

  var start = firstUnanswered();
  activate(start === -1 ? 0 : start);
  form.dataset.keyboard = "ready";  // lets tests (and curious users) see that the shortcuts are active
})();
