// The translate web page: pick or drop an image, POST it to /v1/translate, show both side by side.
"use strict";

const $ = (id) => document.getElementById(id);
let picked = null;   // the File to translate
let outputUrl = null;

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function setStatus(text) {
  $("status").textContent = text;
}

async function errorText(response) {
  // The server answers errors as {"error": code, "detail": message}.
  try {
    const body = await response.json();
    return `${response.status} ${body.error}: ${body.detail}`;
  } catch (_e) {
    return `${response.status} ${response.statusText}`;
  }
}

async function loadInfo() {
  const response = await fetch("/v1/info");
  if (!response.ok) {
    showError(await errorText(response));
    return;
  }
  const info = await response.json();
  $("about").textContent =
    `${info.method} translator, directions ${info.directions.join(", ")}, on ${info.device} (${info.precision})`;
  const select = $("direction");
  select.replaceChildren(...info.directions.map((d) => new Option(d, d)));
  $("direction-label").hidden = info.directions.length < 2;
}

function pick(file) {
  if (!file) return;
  picked = file;
  showError("");
  const input = $("input");
  if (input.src) URL.revokeObjectURL(input.src);
  input.onload = () => { $("input-size").textContent = `${input.naturalWidth}x${input.naturalHeight}`; };
  input.src = URL.createObjectURL(file);
  $("run").disabled = false;
  translate();
}

async function translate() {
  if (!picked) return;
  showError("");
  $("run").disabled = true;
  setStatus("Translating…");
  const params = new URLSearchParams({ format: $("format").value });
  if (!$("direction-label").hidden) params.set("direction", $("direction").value);
  try {
    const response = await fetch(`/v1/translate?${params}`, {
      method: "POST",
      body: picked,
      headers: { "Content-Type": "application/octet-stream" },
    });
    if (!response.ok) {
      showError(await errorText(response));
      setStatus("");
      return;
    }
    const blob = await response.blob();
    if (outputUrl) URL.revokeObjectURL(outputUrl);
    outputUrl = URL.createObjectURL(blob);
    const output = $("output");
    output.onload = () => {
      $("output-size").textContent = `${output.naturalWidth}x${output.naturalHeight}`;
      setStatus("Done.");
    };
    output.src = outputUrl;
    const link = $("download");
    const stem = picked.name.replace(/\.[^.]*$/, "") || "image";
    link.href = outputUrl;
    link.download = `${stem}_translated.${$("format").value}`;
    link.hidden = false;
  } catch (e) {
    showError(`The request failed: ${e}`);
    setStatus("");
  } finally {
    $("run").disabled = false;
  }
}

$("file").addEventListener("change", (e) => pick(e.target.files[0]));
$("run").addEventListener("click", translate);
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  pick(e.dataTransfer.files[0]);
});
loadInfo().catch((e) => showError(`Cannot reach the server: ${e}`));
