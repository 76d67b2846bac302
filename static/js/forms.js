/* Forms instead of JSON: a condition builder for every conditions textarea, and config forms generated
   from the declared schemas of triggers and actions. The textarea stays the posted field (kept in sync,
   hidden while the form shows), so the server receives the same JSON document as before; a "JSON" button
   shows it for power users, and back.

   textarea[data-condition-builder]: a list of {path, op, value}. data-operators lists the operators,
   data-paths the <datalist> of path suggestions (data-paths-fit when the form's kind is "fit"),
   data-event-names the datalist its form's eventType input suggests from.
   textarea[data-config-of="trigger|action|…"]: an object described by the JSON document in the
   data-schemas attribute of #automation-schemas: {of: {key: [field…]}} picked by the form's
   select named `of`, or {of: [field…]} when the form has no such select. A field is
   {name, label, kind, required, help, choices, min, max, paths}; kinds: choice, multichoice, integer,
   text, url, emails, conditions; any other kind is edited as JSON. */
(function () {
  "use strict";

  var NO_VALUE = ["exists", "not_exists"];
  var NUMBER = ["gt", "gte", "lt", "lte"];

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (attrs[key] !== undefined && attrs[key] !== null) node.setAttribute(key, attrs[key]);
    });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // JSON with sorted keys: two documents are the same when these are equal
  function canonical(value) {
    if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
    if (value && typeof value === "object") {
      return "{" + Object.keys(value).sort().map(function (key) {
        return JSON.stringify(key) + ":" + canonical(value[key]);
      }).join(",") + "}";
    }
    return JSON.stringify(value);
  }

  function numberOr(text) {
    var trimmed = text.trim();
    if (trimmed !== "" && isFinite(Number(trimmed))) return Number(trimmed);
    return text;  // not a number: sent as typed, and the server's error names the field
  }

  function valueKind(op) {
    if (NO_VALUE.indexOf(op) >= 0) return "none";
    if (op === "in") return "list";
    if (NUMBER.indexOf(op) >= 0) return "number";
    if (op === "regex") return "text";
    return "scalar";  // text or number, as the type select says
  }

  /* ---- condition rows ---------------------------------------------------------------------------- */

  function ConditionRows(holder, options) {
    this.operators = options.operators;
    this.paths = options.paths;  // a function: the datalist id to suggest from
    this.onChange = options.onChange;
    this.box = el("div", { class: "builder", "data-condition-rows": "" });
    this.list = el("div", { class: "builder-list" });
    var add = el("button", { type: "button", class: "link", "data-add-condition": "" }, "+ Add condition");
    this.box.appendChild(this.list);
    this.box.appendChild(add);
    holder.appendChild(this.box);
    var self = this;
    add.addEventListener("click", function () {
      self.addRow({ path: "", op: self.operators[0], value: "" }).querySelector("[data-part=path]").focus();
      self.onChange();
    });
  }

  // Whether a list of conditions can be shown as rows and read back unchanged.
  ConditionRows.prototype.representable = function (conditions) {
    var operators = this.operators;
    if (!Array.isArray(conditions)) return false;
    return conditions.every(function (c) {
      if (!c || typeof c !== "object" || Array.isArray(c)) return false;
      if (Object.keys(c).some(function (key) { return ["path", "op", "value"].indexOf(key) < 0; })) return false;
      if (typeof c.path !== "string" || operators.indexOf(c.op) < 0) return false;
      var kind = valueKind(c.op), v = c.value;
      if (kind === "none") return v === undefined || v === null;
      if (kind === "list") {
        // one item per line: items with a line break or edge spaces would not read back the same
        var line = function (x) { return typeof x === "string" && x !== "" && x.trim() === x && x.indexOf("\n") < 0; };
        return Array.isArray(v) && v.length > 0 &&
          (v.every(line) || v.every(function (x) { return typeof x === "number"; }));
      }
      if (kind === "number") return typeof v === "number";
      if (kind === "text") return typeof v === "string";
      return typeof v === "number" || typeof v === "string";
    });
  };

  ConditionRows.prototype.load = function (conditions) {
    this.list.textContent = "";
    var self = this;
    conditions.forEach(function (c) { self.addRow(c); });
  };

  ConditionRows.prototype.addRow = function (condition) {
    var self = this;
    var row = el("div", { class: "builder-row", "data-condition-row": "" });
    var path = el("input", { type: "text", "data-part": "path", placeholder: "properties.url", "aria-label": "Path",
      autocomplete: "off", list: this.paths() });
    path.value = condition.path || "";
    var op = el("select", { "data-part": "op", "aria-label": "Operator" });
    this.operators.forEach(function (name) { op.appendChild(el("option", { value: name }, name.replace(/_/g, " "))); });
    op.value = condition.op;
    var slot = el("span", { class: "builder-value", "data-part": "value-slot" });
    var remove = el("button", { type: "button", class: "link", "data-part": "remove", "aria-label": "Remove condition" }, "✕");
    row.appendChild(path);
    row.appendChild(op);
    row.appendChild(slot);
    row.appendChild(remove);
    this.list.appendChild(row);
    this.valueInput(row, condition.op, condition.value);
    row.addEventListener("input", function () { self.onChange(); });
    row.addEventListener("change", function (event) {
      if (event.target === op) {
        var before = self.readValue(row);
        self.valueInput(row, op.value, before);
      }
      self.onChange();
    });
    remove.addEventListener("click", function () { row.remove(); self.onChange(); });
    return row;
  };

  // The value input the operator takes; `previous` (the value before an operator change) is kept when it fits.
  ConditionRows.prototype.valueInput = function (row, op, previous) {
    var slot = row.querySelector("[data-part=value-slot]");
    slot.textContent = "";
    var kind = valueKind(op);
    row.setAttribute("data-kind", kind);
    if (kind === "none") return;
    var input;
    if (kind === "list") {
      input = el("textarea", { rows: 2, "data-part": "value", "aria-label": "Values, one per line", placeholder: "one value per line" });
      var items = Array.isArray(previous) ? previous : (previous === undefined || previous === null || previous === "" ? [] : [previous]);
      input.value = items.map(String).join("\n");
      slot.appendChild(input);
      slot.appendChild(this.typeSelect(items.length && items.every(function (x) { return typeof x === "number"; })));
      return;
    }
    var shown = previous === undefined || previous === null ? "" : (Array.isArray(previous) ? String(previous[0] || "") : String(previous));
    if (kind === "number") {
      input = el("input", { type: "number", step: "any", "data-part": "value", "aria-label": "Number" });
      input.value = isFinite(Number(shown)) ? shown : "";
      slot.appendChild(input);
      return;
    }
    input = el("input", { type: "text", "data-part": "value", "aria-label": kind === "text" ? "Regular expression" : "Value" });
    input.value = shown;
    slot.appendChild(input);
    if (kind === "scalar") slot.appendChild(this.typeSelect(typeof previous === "number"));
  };

  ConditionRows.prototype.typeSelect = function (isNumber) {
    var select = el("select", { "data-part": "type", "aria-label": "Value type" });
    select.appendChild(el("option", { value: "text" }, "text"));
    select.appendChild(el("option", { value: "number" }, "number"));
    select.value = isNumber ? "number" : "text";
    return select;
  };

  ConditionRows.prototype.readValue = function (row) {
    var kind = row.getAttribute("data-kind");
    var input = row.querySelector("[data-part=value]");
    var type = row.querySelector("[data-part=type]");
    var asNumber = type && type.value === "number";
    if (kind === "none" || !input) return null;
    if (kind === "list") {
      return input.value.split("\n").map(function (line) { return line.trim(); })
        .filter(function (line) { return line !== ""; })
        .map(function (line) { return asNumber ? numberOr(line) : line; });
    }
    if (kind === "number") return numberOr(input.value);
    return asNumber ? numberOr(input.value) : input.value;
  };

  ConditionRows.prototype.read = function () {
    var self = this;
    return Array.prototype.map.call(this.list.querySelectorAll("[data-condition-row]"), function (row) {
      return {
        path: row.querySelector("[data-part=path]").value.trim(),
        op: row.querySelector("[data-part=op]").value,
        value: self.readValue(row),
      };
    });
  };

  ConditionRows.prototype.setPaths = function (id) {
    Array.prototype.forEach.call(this.list.querySelectorAll("[data-part=path]"), function (input) {
      if (id) input.setAttribute("list", id); else input.removeAttribute("list");
    });
  };

  // exists/not_exists carry no value: stored as null whether it was left out or not
  function normalised(conditions) {
    return Array.isArray(conditions) ? conditions.map(function (c) {
      if (c && typeof c === "object" && NO_VALUE.indexOf(c.op) >= 0 && c.value === undefined) {
        var copy = {};
        Object.keys(c).forEach(function (key) { copy[key] = c[key]; });
        copy.value = null;
        return copy;
      }
      return c;
    }) : conditions;
  }

  /* ---- a textarea edited through a form, with the JSON toggle -------------------------------------- */

  // `editor` renders a document into a holder and reads it back: {holder, show(doc) -> bool, read() -> doc}
  function JsonToggle(textarea, editor, empty) {
    this.textarea = textarea;
    this.editor = editor;
    this.empty = empty;
    var tools = el("div", { class: "builder-tools" });
    this.button = el("button", { type: "button", class: "link", "data-json-toggle": "", "aria-pressed": "false" }, "Edit as JSON");
    this.note = el("span", { class: "builder-note error", "data-builder-note": "" });
    this.note.hidden = true;
    tools.appendChild(this.button);
    tools.appendChild(this.note);
    textarea.parentNode.insertBefore(editor.holder, textarea);
    textarea.parentNode.insertBefore(tools, textarea);
    var self = this;
    this.button.addEventListener("click", function () {
      if (self.mode === "form") self.toJson(); else self.toForm();
    });
    if (!this.toForm()) this.toJson(true);
  }

  JsonToggle.prototype.parse = function () {
    var text = this.textarea.value.trim();
    if (text === "") return { ok: true, value: this.empty };
    try {
      return { ok: true, value: JSON.parse(text) };
    } catch (error) {
      return { ok: false, message: "Not valid JSON (" + error.message + "): fix it here first." };
    }
  };

  JsonToggle.prototype.toForm = function () {
    var parsed = this.parse();
    if (!parsed.ok) return this.refuse(parsed.message);
    if (!this.editor.show(parsed.value)) return this.refuse("This JSON cannot be shown as a form without changing it: edit it here.");
    this.mode = "form";
    this.note.hidden = true;
    this.editor.holder.hidden = false;
    this.textarea.hidden = true;
    this.button.textContent = "Edit as JSON";
    this.button.setAttribute("aria-pressed", "false");
    this.textarea.parentNode.setAttribute("data-builder-mode", "form");
    return true;
  };

  JsonToggle.prototype.refuse = function (message) {
    this.note.textContent = message;
    this.note.hidden = false;
    return false;
  };

  JsonToggle.prototype.toJson = function (keepNote) {
    if (this.mode === "form") this.sync();
    this.mode = "json";
    if (!keepNote) this.note.hidden = true;
    this.editor.holder.hidden = true;
    this.textarea.hidden = false;
    this.button.textContent = "Edit as form";
    this.button.setAttribute("aria-pressed", "true");
    this.textarea.parentNode.setAttribute("data-builder-mode", "json");
  };

  JsonToggle.prototype.sync = function () {
    if (this.mode === "form") this.textarea.value = JSON.stringify(this.editor.read(), null, 1);
  };

  /* ---- condition builders ------------------------------------------------------------------------ */

  function conditionBuilder(textarea) {
    var form = textarea.form;
    var kind = form && form.querySelector("select[name=kind]");
    var names = textarea.getAttribute("data-event-names");
    var eventType = form && form.querySelector("input[name=eventType]");
    if (names && eventType) eventType.setAttribute("list", names);
    function paths() {
      var fit = textarea.getAttribute("data-paths-fit");
      return kind && kind.value === "fit" && fit ? fit : textarea.getAttribute("data-paths") || undefined;
    }
    var toggle;
    var holder = el("div", { class: "condition-builder" });
    var rows = new ConditionRows(holder, {
      operators: (textarea.getAttribute("data-operators") || "eq").split(","),
      paths: paths,
      onChange: function () { toggle.sync(); },
    });
    var editor = {
      holder: holder,
      show: function (doc) {
        var conditions = normalised(doc);
        if (!rows.representable(conditions)) return false;
        rows.load(conditions);
        return canonical(rows.read()) === canonical(conditions);
      },
      read: function () { return rows.read(); },
    };
    toggle = new JsonToggle(textarea, editor, []);
    if (kind) kind.addEventListener("change", function () { rows.setPaths(paths()); });
  }

  /* ---- config forms from declared schemas ---------------------------------------------------------- */

  function fieldEditor(field, value, onChange, operators) {
    var box = el("div", { class: "config-field", "data-config-field": field.name, "data-kind": field.kind });
    var id = "config-" + Math.random().toString(36).slice(2);
    var label = el("label", { for: id }, field.label + (field.required ? "" : " (optional)"));
    box.appendChild(label);
    var input, read;
    if (field.kind === "choice") {
      input = el("select", { id: id, name: "" });
      // a required one starts unchosen too: the form shows what the JSON holds, nothing more
      input.appendChild(el("option", { value: "" }, field.blank || (field.required ? "Choose…" : "—")));
      field.choices.forEach(function (choice) { input.appendChild(el("option", { value: choice[0] }, choice[1])); });
      input.value = value === undefined ? "" : value;
      read = function () { return input.value === "" ? undefined : input.value; };
    } else if (field.kind === "multichoice") {
      input = el("span", { class: "choices-inline", id: id });
      field.choices.forEach(function (choice) {
        var option = el("label");
        var tick = el("input", { type: "checkbox", value: choice[0] });
        tick.checked = Array.isArray(value) && value.indexOf(choice[0]) >= 0;
        option.appendChild(tick);
        option.appendChild(document.createTextNode(choice[1]));
        input.appendChild(option);
      });
      read = function () {
        var ticked = Array.prototype.filter.call(input.querySelectorAll("input"), function (t) { return t.checked; })
          .map(function (t) { return t.value; });
        return ticked.length ? ticked : undefined;
      };
    } else if (field.kind === "integer") {
      input = el("input", { id: id, type: "number", step: "1", min: field.min, max: field.max });
      input.value = value === undefined ? "" : String(value);
      read = function () { return input.value.trim() === "" ? undefined : numberOr(input.value); };
    } else if (field.kind === "text" || field.kind === "url") {
      input = el("input", { id: id, type: field.kind === "url" ? "url" : "text", autocomplete: "off",
        placeholder: field.placeholder, list: field.suggest });
      input.value = value === undefined ? "" : String(value);
      read = function () { return input.value === "" ? undefined : input.value; };
    } else if (field.kind === "emails") {
      input = el("textarea", { id: id, rows: 2, placeholder: "one address per line" });
      input.value = Array.isArray(value) ? value.join("\n") : "";
      read = function () {
        var lines = input.value.split(/[\n,]/).map(function (line) { return line.trim(); })
          .filter(function (line) { return line !== ""; });
        return lines.length ? lines : undefined;
      };
    } else if (field.kind === "conditions") {
      input = el("div", { id: id });
      var rows = new ConditionRows(input, { operators: operators, paths: function () { return field.paths; }, onChange: onChange });
      rows.load(normalised(value || []));
      read = function () { var list = rows.read(); return list.length ? list : undefined; };
    } else {
      input = el("textarea", { id: id, rows: 2, "data-raw-json": "" });
      input.value = value === undefined ? "" : JSON.stringify(value);
      read = function () {
        if (input.value.trim() === "") return undefined;
        try { return JSON.parse(input.value); } catch (error) { return input.value; }
      };
    }
    box.appendChild(input);
    if (field.help) box.appendChild(el("span", { class: "muted small" }, field.help));
    box.addEventListener("input", onChange);
    box.addEventListener("change", onChange);
    return { box: box, read: read };
  }

  function configForm(textarea, schemas) {
    var of = textarea.getAttribute("data-config-of");
    var form = textarea.form;
    var picker = form && form.querySelector("select[name=" + CSS.escape(of) + "]");
    var operators = (textarea.getAttribute("data-operators") || "eq").split(",");
    function fields() {
      var declared = schemas[of] || [];
      return picker ? declared[picker.value] || [] : declared;
    }
    var toggle, editors = [];
    var holder = el("div", { class: "config-fields", "data-config-form": of });
    function render(doc) {
      holder.textContent = "";
      editors = fields().map(function (field) {
        var editor = fieldEditor(field, doc[field.name], function () { toggle.sync(); }, operators);
        holder.appendChild(editor.box);
        return { name: field.name, read: editor.read };
      });
      if (!editors.length) holder.appendChild(el("p", { class: "muted", "data-config-empty": "" }, "Nothing to set."));
    }
    function read() {
      var doc = {};
      editors.forEach(function (editor) {
        var value = editor.read();
        if (value !== undefined) doc[editor.name] = value;
      });
      return doc;
    }
    var editor = {
      holder: holder,
      show: function (doc) {
        if (!doc || typeof doc !== "object" || Array.isArray(doc)) return false;
        render(doc);
        return canonical(read()) === canonical(doc);
      },
      read: read,
    };
    toggle = new JsonToggle(textarea, editor, {});
    if (picker) {
      picker.addEventListener("change", function () {
        // another trigger or action: keep what the new one also takes
        if (toggle.mode !== "form") return;
        var before = read();
        var kept = {};
        fields().forEach(function (field) { if (before[field.name] !== undefined) kept[field.name] = before[field.name]; });
        render(kept);
        toggle.sync();
      });
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("textarea[data-condition-builder]"), conditionBuilder);
  var schemas = document.getElementById("automation-schemas");
  if (schemas) {
    var declared = JSON.parse(schemas.getAttribute("data-schemas"));
    Array.prototype.forEach.call(document.querySelectorAll("textarea[data-config-of]"), function (textarea) {
      configForm(textarea, declared);
    });
  }
})();
