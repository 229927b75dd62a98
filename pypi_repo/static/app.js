/* pypi_repo UI: copy buttons, live project filter, search suggestions. No dependencies. */
(function () {
  "use strict";

  function announce(text) {
    var region = document.getElementById("live-region");
    if (region) { region.textContent = ""; window.setTimeout(function () { region.textContent = text; }, 30); }
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy") ? resolve() : reject(new Error("copy failed")); }
      catch (err) { reject(err); }
      finally { document.body.removeChild(area); }
    });
  }

  /* Copy buttons are rendered hidden: without JavaScript they would do nothing (issue 12, defect 16). */
  function initCopyButtons() {
    document.querySelectorAll("[data-copy-target]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var target = document.getElementById(button.getAttribute("data-copy-target"));
        if (!target) { return; }
        copyText(target.textContent.trim()).then(function () {
          button.textContent = "Copied";
          button.classList.add("copied");
          announce("Copied to the clipboard");
          window.setTimeout(function () { button.textContent = "Copy"; button.classList.remove("copied"); }, 2000);
        }, function () {
          button.textContent = "Select and copy";
          var range = document.createRange();
          range.selectNodeContents(target);
          var sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
        });
      });
    });
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      var args = arguments, self = this;
      window.clearTimeout(timer);
      timer = window.setTimeout(function () { fn.apply(self, args); }, ms);
    };
  }

  /* /projects/: the form re-renders its result list as you type (server-rendered fragment). */
  function initLiveSearch() {
    var form = document.querySelector("[data-live-search]");
    var results = document.getElementById("results");
    if (!form || !results) { return; }
    var input = form.querySelector("input[name=q]");
    var sort = form.querySelector("select[name=sort]");
    var controller = null;
    function update() {
      var params = new URLSearchParams(new FormData(form));
      if (!params.get("q")) { params.delete("q"); }
      if (sort) { sort.disabled = !!input.value.trim(); }
      var query = params.toString();
      window.history.replaceState(null, "", form.action + (query ? "?" + query : ""));
      params.set("partial", "1");
      if (controller) { controller.abort(); }
      controller = new AbortController();
      fetch(form.action + "?" + params.toString(), { signal: controller.signal, headers: { "Accept": "text/html" } })
        .then(function (resp) { return resp.ok ? resp.text() : Promise.reject(resp.status); })
        .then(function (html) {
          results.innerHTML = html;  /* server-rendered, autoescaped fragment */
          var count = document.getElementById("result-count");
          if (count) { announce(count.textContent.replace(/\s+/g, " ").trim()); }
        })
        .catch(function () { /* aborted or failed: the form still works without JS */ });
    }
    input.addEventListener("input", debounce(update, 120));
    form.querySelectorAll("select").forEach(function (select) { select.addEventListener("change", update); });
  }

  /* Home: suggestions under the search box (combobox with a listbox, arrow keys + Enter). */
  function initSuggest() {
    var input = document.querySelector("[data-suggest]");
    if (!input) { return; }
    var list = document.getElementById(input.getAttribute("aria-controls"));
    var active = -1, controller = null;
    function close() { list.hidden = true; input.setAttribute("aria-expanded", "false"); active = -1; input.removeAttribute("aria-activedescendant"); }
    function highlight(index) {
      var items = list.querySelectorAll("[role=option]");
      items.forEach(function (el, i) { el.setAttribute("aria-selected", i === index ? "true" : "false"); });
      active = index;
      if (items[index]) { input.setAttribute("aria-activedescendant", items[index].id); }
    }
    function render(data) {
      list.textContent = "";
      data.results.forEach(function (hit, i) {
        var li = document.createElement("li");
        li.id = "suggestion-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        var link = document.createElement("a");
        link.href = hit.url;
        link.tabIndex = -1;
        var name = document.createElement("strong");
        name.textContent = hit.display_name;
        link.appendChild(name);
        if (hit.version) {
          var version = document.createElement("span");
          version.className = "version";
          version.textContent = hit.version;
          link.appendChild(document.createTextNode(" "));
          link.appendChild(version);
        }
        if (hit.summary) {
          var summary = document.createElement("span");
          summary.className = "muted suggestion-summary";
          summary.textContent = hit.summary;
          link.appendChild(summary);
        }
        li.appendChild(link);
        list.appendChild(li);
      });
      if (!data.results.length) {
        var none = document.createElement("li");
        none.className = "muted";
        none.textContent = "No project matches";
        list.appendChild(none);
      }
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      active = -1;
    }
    var lookup = debounce(function () {
      var q = input.value.trim();
      if (!q) { close(); return; }
      if (controller) { controller.abort(); }
      controller = new AbortController();
      fetch(input.getAttribute("data-suggest") + "?limit=8&q=" + encodeURIComponent(q), { signal: controller.signal })
        .then(function (resp) { return resp.json(); })
        .then(render)
        .catch(function () {});
    }, 100);
    input.addEventListener("input", lookup);
    input.addEventListener("keydown", function (event) {
      var items = list.querySelectorAll("[role=option]");
      if (list.hidden || !items.length) { return; }
      if (event.key === "ArrowDown") { event.preventDefault(); highlight((active + 1) % items.length); }
      else if (event.key === "ArrowUp") { event.preventDefault(); highlight((active - 1 + items.length) % items.length); }
      else if (event.key === "Escape") { close(); }
      else if (event.key === "Enter" && active >= 0) {
        event.preventDefault();
        window.location.href = items[active].querySelector("a").href;
      }
    });
    document.addEventListener("click", function (event) { if (!list.contains(event.target) && event.target !== input) { close(); } });
  }

  /* A box that scrolls sideways (wide code, tables) must be reachable by keyboard to scroll it. */
  function initScrollRegions() {
    document.querySelectorAll(".readme-body pre, .readme-body table, .table-wrap, .chart").forEach(function (box) {
      if (box.scrollWidth > box.clientWidth && !box.hasAttribute("tabindex")) { box.tabIndex = 0; }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    initScrollRegions();
    initCopyButtons();
    initLiveSearch();
    initSuggest();
  });
})();
