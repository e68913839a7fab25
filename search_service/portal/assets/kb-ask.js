/* Ask the playbooks + search as you type, backed by the search service (/v1/search, /v1/ask).
 * Every string from the content or the service is inserted as text (textContent), never as
 * HTML; the only markup we build is <mark> around matched terms and our own links. */
(function () {
  "use strict";

  var API = (document.querySelector('meta[name="kb-api"]') || {}).content || "";
  API = API.replace(/\/$/, "");
  var feedbackAvailable = null;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "class") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  /* Only links into this portal (relative or same origin) are followed. */
  function safeUrl(url) {
    if (typeof url !== "string") return "#";
    if (/^\/(?!\/)/.test(url) || /^#/.test(url)) return siteRoot() + url.replace(/^\//, "");
    try {
      var parsed = new URL(url, window.location.href);
      if (parsed.origin === window.location.origin) return parsed.href;
    } catch (e) { /* fall through */ }
    return "#";
  }

  function siteRoot() {
    var base = document.querySelector("base");
    var root = new URL((base && base.getAttribute("href")) || "./", window.location.href);
    // MkDocs pages link to the site root relatively; the logo link is the root.
    var home = document.querySelector("a.md-logo, a.md-header__button.md-logo");
    if (home) root = new URL(home.getAttribute("href"), window.location.href);
    return root.href.replace(/[^/]*$/, "");
  }

  /* Snippets arrive escaped with <mark> around terms: rebuild them from text, allowing only <mark>. */
  function snippetNode(snippet) {
    var span = el("span", { class: "kb-snippet" });
    var parts = String(snippet || "").split(/(<mark>|<\/mark>)/);
    var inMark = false;
    parts.forEach(function (part) {
      if (part === "<mark>") { inMark = true; return; }
      if (part === "</mark>") { inMark = false; return; }
      var text = decodeEntities(part);
      span.appendChild(inMark ? el("mark", { text: text }) : document.createTextNode(text));
    });
    return span;
  }

  function decodeEntities(text) {
    var doc = new DOMParser().parseFromString("<!doctype html><body>" + text.replace(/</g, "&lt;"), "text/html");
    return doc.body.textContent;
  }

  function fetchJson(path, options) {
    return fetch(API + path, options).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    });
  }

  function checkFeedback() {
    if (feedbackAvailable !== null) return Promise.resolve(feedbackAvailable);
    return fetchJson("/openapi.json").then(function (schema) {
      feedbackAvailable = Boolean(schema.paths && schema.paths["/v1/feedback"]);
      return feedbackAvailable;
    }).catch(function () { feedbackAvailable = false; return false; });
  }

  /* ---------- search as you type ---------- */

  function renderResults(box, hits) {
    var list = box.querySelector(".kb-results");
    list.textContent = "";
    if (!hits.length) {
      list.appendChild(el("li", { class: "kb-empty", text: "No matching sections. Press Enter to ask instead." }));
      return;
    }
    hits.forEach(function (hit) {
      var title = el("a", { href: safeUrl(hit.url), class: "kb-result-title", text: hit.title });
      var meta = el("span", { class: "kb-result-section", text: hit.section || "" });
      var flags = [];
      if (hit.stale) flags.push(el("span", { class: "kb-flag", text: "review overdue" }));
      if (hit.deprecated) flags.push(el("span", { class: "kb-flag", text: "deprecated" }));
      list.appendChild(el("li", { class: "kb-result" }, [title, meta].concat(flags).concat([snippetNode(hit.snippet)])));
    });
  }

  function builtInSearch(query) {
    var toggle = document.getElementById("__search");
    var input = document.querySelector(".md-search__input");
    if (!toggle || !input) return;
    toggle.checked = true;
    input.value = query;
    input.focus();
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.dispatchEvent(new KeyboardEvent("keyup", { bubbles: true }));
  }

  function showFallback(box, query) {
    var list = box.querySelector(".kb-results");
    list.textContent = "";
    var button = el("button", { type: "button", class: "md-button kb-fallback-button", text: "Use the built-in search" });
    button.addEventListener("click", function () { builtInSearch(query); });
    list.appendChild(el("li", { class: "kb-fallback" }, [
      el("span", { text: "Semantic search is not available right now. " }), button]));
  }

  var searchTimer = null;
  var searchSeq = 0;
  function onType(box) {
    var input = box.querySelector("input");
    var query = input.value.trim();
    clearTimeout(searchTimer);
    if (query.length < 3) { box.querySelector(".kb-results").textContent = ""; return; }
    searchTimer = setTimeout(function () {
      var seq = ++searchSeq;
      var params = new URLSearchParams({ q: query, k: "6" });
      fetchJson("/v1/search?" + params.toString()).then(function (body) {
        if (seq === searchSeq) renderResults(box, body.hits || []);
      }).catch(function () { if (seq === searchSeq) showFallback(box, query); });
    }, 250);
  }

  /* ---------- ask ---------- */

  function answerNode(text, citations) {
    var byNumber = {};
    (citations || []).forEach(function (c) { byNumber[c.n] = c; });
    var container = el("div", { class: "kb-answer-text" });
    String(text || "").split("\n").forEach(function (line) {
      var p = el("p");
      line.split(/(\[\d+\])/).forEach(function (part) {
        var m = /^\[(\d+)\]$/.exec(part);
        if (m && byNumber[m[1]]) {
          p.appendChild(el("a", { href: safeUrl(byNumber[m[1]].url), class: "kb-cite", text: "[" + m[1] + "]",
            title: byNumber[m[1]].title + (byNumber[m[1]].section ? " — " + byNumber[m[1]].section : "") }));
        } else {
          p.appendChild(document.createTextNode(part));
        }
      });
      container.appendChild(p);
    });
    return container;
  }

  function renderAnswer(out, body) {
    out.textContent = "";
    out.removeAttribute("aria-busy");
    if (!body.answered) {
      out.className = "kb-answer kb-not-covered";
      out.appendChild(el("p", { class: "kb-answer-title", text: "Not covered by the playbooks" }));
      out.appendChild(el("p", { text: "We could not find this in the playbooks, so we will not guess. The nearest pages:" }));
      var ul = el("ul", { class: "kb-suggestions" });
      (body.suggestions || []).forEach(function (s) {
        ul.appendChild(el("li", {}, [el("a", { href: safeUrl(s.url), text: s.title })]));
      });
      out.appendChild(ul);
      out.appendChild(el("p", { class: "kb-hint", text: "Still stuck? Ask the CoE through its office hours, and tell the page owners what was missing." }));
    } else {
      out.className = "kb-answer";
      out.appendChild(answerNode(body.answer, body.citations));
      var ol = el("ol", { class: "kb-citations" });
      (body.citations || []).forEach(function (c) {
        var li = el("li", { value: String(c.n) }, [
          el("a", { href: safeUrl(c.url), text: c.title + (c.section ? " — " + c.section : "") }),
          el("br"), snippetNode(c.snippet)]);
        ol.appendChild(li);
      });
      out.appendChild(ol);
      if (body.fallback && body.mode === "extractive") {
        out.appendChild(el("p", { class: "kb-hint", text: "Quoted from the playbooks (" + body.fallback + ")." }));
      }
    }
    checkFeedback().then(function (ok) { if (ok) out.appendChild(feedbackNode(body.id)); });
  }

  function feedbackNode(answerId) {
    var wrap = el("div", { class: "kb-feedback" }, [el("span", { text: "Was this helpful? " })]);
    ["up", "down"].forEach(function (rating) {
      var button = el("button", { type: "button", class: "kb-thumb", "data-rating": rating,
        "aria-label": rating === "up" ? "Helpful" : "Not helpful", text: rating === "up" ? "👍" : "👎" });
      button.addEventListener("click", function () {
        fetchJson("/v1/feedback", { method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ answer_id: answerId, rating: rating }) })
          .then(function () { wrap.textContent = "Thanks for the feedback."; })
          .catch(function () { wrap.textContent = "Could not send feedback."; });
      });
      wrap.appendChild(button);
    });
    return wrap;
  }

  function parseEvents(buffer, onEvent) {
    var events = buffer.split("\n\n");
    var rest = events.pop();
    events.forEach(function (block) {
      var name = "message", data = "";
      block.split("\n").forEach(function (line) {
        if (line.indexOf("event:") === 0) name = line.slice(6).trim();
        else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
      });
      if (data) onEvent(name, JSON.parse(data));
    });
    return rest;
  }

  function ask(box, question) {
    clearTimeout(searchTimer);
    searchSeq++;  // results of a search still in flight are dropped
    var out = box.querySelector(".kb-answer");
    box.querySelector(".kb-results").textContent = "";
    out.className = "kb-answer kb-loading";
    out.setAttribute("aria-busy", "true");
    out.textContent = "";
    out.appendChild(el("p", { class: "kb-loading-text", text: "Looking through the playbooks…" }));
    var payload = { question: question, stream: true };
    if (box.dataset.kbPage) payload.page = box.dataset.kbPage;
    var streamed = el("p", { class: "kb-streaming" });
    fetch(API + "/v1/ask", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) })
      .then(function (response) {
        if (!response.ok) {
          return response.json().then(function (body) {
            throw new Error((body.error && body.error.message) || ("HTTP " + response.status));
          });
        }
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) return;
            buffer = parseEvents(buffer + decoder.decode(chunk.value, { stream: true }), function (name, data) {
              if (name === "token") {
                if (!streamed.parentNode) { out.textContent = ""; out.appendChild(streamed); }
                streamed.textContent += data.text;
              } else if (name === "done") {
                renderAnswer(out, data);
              }
            });
            return pump();
          });
        }
        return pump();
      })
      .catch(function (error) {
        out.className = "kb-answer kb-error";
        out.removeAttribute("aria-busy");
        out.textContent = "";
        var button = el("button", { type: "button", class: "md-button", text: "Use the built-in search" });
        button.addEventListener("click", function () { builtInSearch(question); });
        out.appendChild(el("p", { text: "The answer service is not available (" + error.message + "). " }));
        out.appendChild(button);
      });
  }

  /* ---------- widgets ---------- */

  function mount(box, options) {
    box.classList.add("kb-box");
    var input = el("input", { type: "search", class: "kb-input", name: "q", autocomplete: "off",
      placeholder: options.placeholder, "aria-label": options.placeholder });
    var button = el("button", { type: "submit", class: "md-button md-button--primary kb-ask-button", text: "Ask" });
    var form = el("form", { class: "kb-form", role: "search" }, [input, button]);
    box.appendChild(form);
    box.appendChild(el("ul", { class: "kb-results", "aria-live": "polite" }));
    box.appendChild(el("div", { class: "kb-answer", "aria-live": "polite" }));
    if (options.searchAsYouType) input.addEventListener("input", function () { onType(box); });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var question = input.value.trim();
      if (question) ask(box, question);
    });
  }

  function init() {
    document.querySelectorAll(".kb-ask").forEach(function (box) {
      if (box.dataset.kbMounted) return;
      box.dataset.kbMounted = "1";
      mount(box, { placeholder: "Ask a question or search the playbooks", searchAsYouType: true });
    });
    var header = document.querySelector(".kb-page-header[data-kb-path]");
    var article = document.querySelector("article.md-content__inner");
    if (header && article && !article.querySelector(".kb-page-ask")) {
      var box = el("div", { class: "kb-page-ask" });
      box.dataset.kbPage = header.dataset.kbPath;
      var section = el("section", { class: "kb-page-ask-section" }, [el("h2", { text: "Ask about this page", id: "kb-ask-about-this-page" }), box]);
      article.appendChild(section);
      mount(box, { placeholder: "Ask a question about this page", searchAsYouType: false });
    }
  }

  if (window.document$ && window.document$.subscribe) window.document$.subscribe(init);  // instant navigation
  else if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
