// Drag-and-drop and a preview for the upload form. The form works without this script:
// it only puts a dropped file into the file input and shows the chosen picture.
(function () {
  "use strict";
  var zone = document.getElementById("dropzone");
  var input = document.getElementById("image");
  var preview = document.getElementById("preview");
  if (!zone || !input || !preview) return;

  function show(file) {
    if (!file || !/^image\//.test(file.type)) { preview.hidden = true; return; }
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    preview.alt = "preview of " + file.name;
    preview.hidden = false;
  }

  input.addEventListener("change", function () { show(input.files[0]); });
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function () { zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    var files = event.dataTransfer && event.dataTransfer.files;
    if (!files || files.length === 0) return;
    var transfer = new DataTransfer();
    transfer.items.add(files[0]);
    input.files = transfer.files;
    show(files[0]);
  });
})();
