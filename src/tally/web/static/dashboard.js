/* Tally dashboard: draws the page's figures from /ui/api/<view>, with uPlot charts and tables
   that sort and download as CSV. No inline script anywhere (the pages' CSP is script-src 'self'). */
(function () {
  "use strict";

  var view = document.body.dataset.view;
  if (!view) return; // the sign-in page needs no script

  var content = document.getElementById("content");
  var status = document.getElementById("status");
  var charts = [];
  var COLORS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2"];

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      node.append(c);
    });
    return node;
  }

  function fmtInt(v) {
    return v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US");
  }
  function fmtRate(v) {
    return v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%";
  }
  function fmtCell(kind, v) {
    if (kind === "int") return fmtInt(v);
    if (kind === "rate") return fmtRate(v);
    if (v === null || v === undefined || v === "") return kind === "time" ? "never" : "";
    return String(v);
  }

  function showError(message) {
    status.textContent = message;
    status.className = "error";
    status.setAttribute("role", "alert");
  }

  function section(title, id) {
    var s = el("section", { class: "panel", id: id || "" });
    s.append(el("h2", { text: title }));
    content.append(s);
    return s;
  }

  function cards(items) {
    var box = el("div", { class: "cards" });
    items.forEach(function (it) {
      box.append(
        el("div", { class: "card", "data-figure": it[0] }, [
          el("span", { class: "label", text: it[1] }),
          el("span", { class: "value", text: it[2] }),
        ])
      );
    });
    content.append(box);
  }

  // -- charts ---------------------------------------------------------------------------------
  function chart(parent, title, tz, x, series) {
    var fig = el("figure", { class: "chart" });
    fig.append(el("figcaption", { text: title }));
    parent.append(fig);
    var any = series.some(function (s) {
      return s.values.some(function (v) {
        return v;
      });
    });
    if (!x.length || !any) {
      fig.append(el("p", { class: "empty", text: "No data in this window." }));
      return;
    }
    var width = Math.max(240, fig.clientWidth || 600);
    var opts = {
      width: width,
      height: 220,
      tzDate: function (ts) {
        return uPlot.tzDate(new Date(ts * 1e3), tz);
      },
      scales: { x: { time: true } },
      series: [{ label: "Day" }].concat(
        series.map(function (s, i) {
          return { label: s.label, stroke: COLORS[i % COLORS.length], width: 2, points: { show: false } };
        })
      ),
      axes: [{}, { size: 56 }],
    };
    var data = [x].concat(
      series.map(function (s) {
        return s.values;
      })
    );
    var plot = new uPlot(opts, data, fig);
    charts.push({ plot: plot, fig: fig });
  }

  function sparkline(cell, values) {
    var wrap = el("div", { class: "spark" });
    cell.append(wrap);
    if (!values.some(function (v) { return v; })) {
      wrap.append(el("span", { class: "empty", text: "no activity" }));
      return;
    }
    var xs = values.map(function (_, i) {
      return i;
    });
    new uPlot(
      {
        width: 120,
        height: 32,
        legend: { show: false },
        cursor: { show: false },
        scales: { x: { time: false } },
        axes: [{ show: false }, { show: false }],
        series: [{}, { stroke: COLORS[0], width: 1.5, fill: "rgba(37,99,235,0.15)", points: { show: false } }],
      },
      [xs, values],
      wrap
    );
  }

  window.addEventListener("resize", function () {
    charts.forEach(function (c) {
      c.plot.setSize({ width: Math.max(240, c.fig.clientWidth), height: 220 });
    });
  });

  // -- tables ---------------------------------------------------------------------------------
  function sortValue(kind, v) {
    if (v === null || v === undefined || v === "") return null;
    if (kind === "link") return v.text.toLowerCase();
    if (kind === "int" || kind === "rate") return Number(v);
    return String(v).toLowerCase();
  }

  function dataTable(parent, name, spec, caption) {
    var box = el("div", { class: "table-box" });
    var bar = el("div", { class: "table-bar" });
    if (caption) bar.append(el("span", { text: caption }));
    bar.append(
      el("a", {
        class: "csv",
        "data-table": name,
        href: "/ui/csv/" + view + "/" + name + location.search,
        download: "",
        text: "Download CSV",
      })
    );
    box.append(bar);
    if (!spec.rows.length) {
      box.append(el("p", { class: "empty", text: "No rows in this window." }));
      parent.append(box);
      return;
    }
    var scroller = el("div", { class: "scroll" });
    var t = el("table", { "data-table": name });
    var head = el("tr");
    spec.columns.forEach(function (c, i) {
      var th = el("th", { scope: "col", "data-kind": c.kind });
      if (c.kind === "spark") th.textContent = c.label;
      else {
        var b = el("button", { type: "button", "data-col": String(i), text: c.label });
        b.addEventListener("click", function () {
          sortBy(i);
        });
        th.append(b);
      }
      head.append(th);
    });
    t.append(el("thead", {}, [head]));
    var body = el("tbody");
    t.append(body);
    var rows = spec.rows.slice();
    var state = { col: -1, dir: 1 };

    function draw() {
      body.replaceChildren();
      rows.forEach(function (row) {
        var tr = el("tr");
        row.forEach(function (v, i) {
          var kind = spec.columns[i].kind;
          var td = el("td", { "data-kind": kind });
          if (kind === "link") td.append(v.href ? el("a", { href: v.href, text: v.text }) : v.text);
          else if (kind === "spark") sparkline(td, v);
          else td.textContent = fmtCell(kind, v);
          if (kind === "text" && v === "possibly missing") tr.className = "missing";
          tr.append(td);
        });
        body.append(tr);
      });
    }

    function sortBy(i) {
      var kind = spec.columns[i].kind;
      state.dir = state.col === i ? -state.dir : 1;
      state.col = i;
      rows.sort(function (a, b) {
        var x = sortValue(kind, a[i]);
        var y = sortValue(kind, b[i]);
        if (x === y) return 0;
        if (x === null) return 1; // empty values last, either way
        if (y === null) return -1;
        return (x < y ? -1 : 1) * state.dir;
      });
      head.querySelectorAll("th").forEach(function (th, j) {
        if (j === i) th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
        else th.removeAttribute("aria-sort");
      });
      draw();
    }

    draw();
    scroller.append(t);
    box.append(scroller);
    parent.append(box);
  }

  // -- the views --------------------------------------------------------------------------------
  function windowLine(d) {
    return d.org.name + ": " + d.from + " to " + d.to + " (" + d.org.timezone + ")";
  }

  function noData(d) {
    if (d.has_data) return;
    content.append(
      el("p", { class: "empty notice", id: "no-data", text: "No usage in this window: there are no events to show." })
    );
  }

  var render = {
    overview: function (d) {
      content.append(el("p", { class: "window", id: "window", text: windowLine(d) }));
      noData(d);
      var t = d.totals;
      cards([
        ["active_developers", "Active developers", fmtInt(t.active_developers)],
        ["suggested", "Completions suggested", fmtInt(t.suggested)],
        ["accepted", "Completions accepted", fmtInt(t.accepted)],
        ["acceptance_rate", "Acceptance rate", fmtRate(t.acceptance_rate)],
        ["chat_turns", "Chat turns", fmtInt(t.chat_turns)],
        ["lines_accepted", "Lines accepted", fmtInt(t.lines_accepted)],
      ]);
      if (d.missing.length) {
        content.append(
          el("p", {
            class: "warning",
            id: "missing",
            role: "status",
            text:
              "Possibly missing data: no event at all on " +
              d.missing.join(", ") +
              " although most days of this window have events.",
          })
        );
      }
      var s = d.series;
      var tz = d.org.timezone;
      var box = section("Charts", "charts");
      chart(box, "Active developers", tz, s.x, [
        { label: "Daily", values: s.active },
        { label: "7-day", values: s.active_7d },
        { label: "28-day", values: s.active_28d },
      ]);
      chart(box, "Completions", tz, s.x, [
        { label: "Suggested", values: s.suggested },
        { label: "Accepted", values: s.accepted },
      ]);
      chart(box, "Chat turns and lines accepted", tz, s.x, [
        { label: "Chat turns", values: s.chat_turns },
        { label: "Lines accepted", values: s.lines_accepted },
      ]);
      dataTable(section("Per day"), "days", d.tables.days);
    },
    departments: function (d) {
      content.append(el("p", { class: "window", id: "window", text: windowLine(d) }));
      var trail = el("nav", { class: "trail", id: "trail", "aria-label": "Department path" });
      d.trail.forEach(function (step, i) {
        if (i) trail.append(" › ");
        trail.append(i === d.trail.length - 1 ? el("span", { text: step.text }) : el("a", { href: step.href, text: step.text }));
      });
      content.append(trail);
      noData(d);
      var title = d.parent ? "Sub-departments (each with its own sub-departments)" : "Top-level departments (each with its sub-departments)";
      dataTable(section(title), "departments", d.tables.departments);
    },
    department: function (d) {
      document.getElementById("title").textContent = "Department " + d.department.name;
      content.append(el("p", { class: "window", id: "window", text: windowLine(d) }));
      noData(d);
      dataTable(section("Members now in " + d.department.name + " and below"), "members", d.tables.members);
    },
    member: function (d) {
      var m = d.member;
      document.getElementById("title").textContent = m.name;
      content.append(el("p", { class: "window", id: "window", text: windowLine(d) }));
      content.append(
        el("p", {
          class: "who",
          id: "who",
          text:
            m.email +
            (m.developer ? " · developer" : "") +
            (m.departments.length ? " · " + m.departments.join(", ") : "") +
            " · last active: " +
            (m.last_active || "never"),
        })
      );
      noData(d);
      var t = d.totals;
      cards([
        ["suggested", "Completions suggested", fmtInt(t.suggested)],
        ["accepted", "Completions accepted", fmtInt(t.accepted)],
        ["acceptance_rate", "Acceptance rate", fmtRate(t.acceptance_rate)],
        ["chat_turns", "Chat turns", fmtInt(t.chat_turns)],
      ]);
      chart(section("Per day", "charts"), "Completions and chat turns", d.org.timezone, d.series.x, [
        { label: "Suggested", values: d.series.suggested },
        { label: "Accepted", values: d.series.accepted },
        { label: "Chat turns", values: d.series.chat_turns },
      ]);
      dataTable(section("By IDE"), "ides", d.tables.ides);
      dataTable(section("By language"), "languages", d.tables.languages);
      dataTable(section("Per day"), "days", d.tables.days);
    },
    inactive: function (d) {
      var n = d.tables.inactive.rows.length;
      content.append(
        el("p", {
          class: "window",
          id: "window",
          text: n + " of " + d.members + " members of " + d.org.name + " have not been active for " + d.days + " days.",
        })
      );
      dataTable(section("Not active for " + d.days + " days"), "inactive", d.tables.inactive);
    },
    environment: function (d) {
      content.append(el("p", { class: "window", id: "window", text: windowLine(d) }));
      noData(d);
      cards([
        ["users", "Users on " + d.to, fmtInt(d.totals.users)],
        ["developers", "Developers on " + d.to, fmtInt(d.totals.developers)],
        ["workspaces", "Workspaces", fmtInt(d.totals.workspaces)],
      ]);
      var s = d.series;
      var box = section("Totals against daily actives", "charts");
      chart(box, "Users", d.org.timezone, s.x, [
        { label: "Total", values: s.total_users },
        { label: "Daily active", values: s.active_users },
      ]);
      chart(box, "Developers", d.org.timezone, s.x, [
        { label: "Total", values: s.total_developers },
        { label: "Daily active", values: s.active_developers },
      ]);
      dataTable(section("Monthly"), "months", d.tables.months);
      dataTable(section("Workspaces"), "workspaces", d.tables.workspaces);
      dataTable(section("Per day"), "days", d.tables.days);
    },
    apps: function (d) {
      content.append(
        el("p", { class: "window", id: "window", text: d.org.name + ": apps as of the end of " + d.date + " (" + d.org.timezone + ")" })
      );
      if (!d.has_data) content.append(el("p", { class: "empty notice", id: "no-data", text: "No apps existed on this day." }));
      dataTable(section("Apps and their metrics"), "apps", d.tables.apps);
    },
  };

  fetch("/ui/api/" + view + location.search, { credentials: "same-origin", headers: { accept: "application/json" } })
    .then(function (r) {
      return r.json().then(function (body) {
        if (r.status === 401) {
          location.href = "/ui/signin?reason=expired";
          return null;
        }
        if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
        return body;
      });
    })
    .then(function (d) {
      if (!d) return;
      status.remove();
      [["from", d.from], ["to", d.to], ["date", d.date], ["days", d.days]].forEach(function (pair) {
        var input = document.getElementById(pair[0]);
        if (input && !input.value && pair[1] !== undefined) input.value = pair[1];
      });
      render[view](d);
      document.body.dataset.ready = "true";
    })
    .catch(function (err) {
      showError("Could not load this page: " + err.message);
      document.body.dataset.ready = "error";
    });
})();
