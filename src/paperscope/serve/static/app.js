// paperscope: results as you type, over the JSON API. Data only ever reaches the page
// through textContent and element properties, never as HTML.
"use strict";

(function () {
  const form = document.getElementById("search");
  const copy = document.getElementById("copy-bibtex");
  if (copy) {
    copy.addEventListener("click", function () {
      const text = document.getElementById(copy.dataset.target).textContent;
      const done = function () { copy.textContent = "Copied"; setTimeout(function () { copy.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { select(copy.dataset.target); });
      } else {
        select(copy.dataset.target);
      }
    });
  }
  if (!form) return;

  const input = document.getElementById("q");
  const results = document.getElementById("results");
  const statusLine = document.getElementById("status");
  const notices = document.getElementById("notices");
  const listing = document.getElementById("listing");
  const corpus = document.getElementById("corpus");
  const fields = ["corpus", "section", "kind", "year_from", "year_to"].map(function (id) { return document.getElementById(id); });
  let timer = null;
  let latest = 0;

  function select(id) {
    const range = document.createRange();
    range.selectNodeContents(document.getElementById(id));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function safeUrl(url) {
    return /^https?:\/\//i.test(url || "") ? url : "#";
  }

  // The snippet as text nodes, with the server's [start, end) code-point spans in <mark>.
  function marked(parent, text, spans) {
    const chars = Array.from(text || "");
    let at = 0;
    (spans || []).forEach(function (span) {
      parent.appendChild(document.createTextNode(chars.slice(at, span[0]).join("")));
      parent.appendChild(el("mark", "", chars.slice(span[0], span[1]).join("")));
      at = span[1];
    });
    parent.appendChild(document.createTextNode(chars.slice(at).join("")));
  }

  function renderHit(hit) {
    const li = el("li", "hit");
    li.dataset.id = hit.id;
    const title = el("a", "title", hit.title);
    // a corpus paper has no page here: its title links to arXiv
    title.href = corpus && corpus.value ? safeUrl(hit.url) : "/entries/" + encodeURIComponent(hit.id);
    li.appendChild(title);
    const facts = el("div", "facts");
    [hit.section, hit.kind, hit.year].forEach(function (fact) { if (fact) facts.appendChild(el("span", "fact", fact)); });
    (hit.tags || []).forEach(function (tag) { facts.appendChild(el("span", "tag", tag)); });
    if (hit.url) {
      const link = el("a", "link", hit.url);
      link.href = safeUrl(hit.url);
      link.rel = "noopener noreferrer";
      facts.appendChild(link);
    }
    li.appendChild(facts);
    if (hit.snippet) {
      const p = el("p", "snippet");
      marked(p, hit.snippet, hit.highlight);
      li.appendChild(p);
    }
    return li;
  }

  function params() {
    const p = new URLSearchParams();
    p.set("q", input.value);
    fields.forEach(function (field) { if (field && field.value && !field.disabled) p.set(field.name, field.value); });
    return p;
  }

  function run() {
    const query = input.value.trim();
    const p = params();
    history.replaceState(null, "", query ? "/?" + p.toString() : "/");
    if (!query) {
      results.replaceChildren();
      notices.replaceChildren();
      statusLine.textContent = "";
      if (listing) listing.hidden = false;
      return;
    }
    if (listing) listing.hidden = true;
    const ticket = ++latest;
    p.set("k", "10");
    fetch("/api/v1/search?" + p.toString(), { headers: { "Accept": "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (answer) {
        if (ticket !== latest) return;  // a newer query was typed meanwhile
        if (!answer.ok) {
          results.replaceChildren();
          statusLine.textContent = (answer.body.error && answer.body.error.message) || "The search failed.";
          return;
        }
        results.replaceChildren.apply(results, answer.body.hits.map(renderHit));
        notices.replaceChildren.apply(notices, (answer.body.notices || []).map(function (n) { return el("li", "", n); }));
        statusLine.textContent = answer.body.hits.length ? answer.body.hits.length + " results" : "No matching entries.";
      })
      .catch(function () {
        if (ticket === latest) statusLine.textContent = "The server cannot be reached.";
      });
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(run, 120);
  }

  // a corpus's papers have no sections: the section filter is for the reading list
  const section = document.getElementById("section");
  if (corpus && section) corpus.addEventListener("change", function () { section.disabled = !!corpus.value; });
  input.addEventListener("input", soon);
  fields.forEach(function (field) { if (field) field.addEventListener("change", soon); });
  form.addEventListener("submit", function (event) { event.preventDefault(); clearTimeout(timer); run(); });
})();
