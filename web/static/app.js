// Flightdeck's page script: plain JavaScript, no build step. It asks before
// destructive actions, keeps live pages current over their websocket
// (resuming without gaps after a reconnect), draws the metric charts and
// ticks the countdowns. Everything else is server-rendered HTML and htmx.
(function () {
  'use strict';

  // ---------------------------------------------------------------------
  // Messages in the page's flash area.

  function flash(message, isError) {
    var el = document.getElementById('flash');
    if (!el) return;
    el.className = 'flash' + (isError ? ' flash-error' : '');
    el.setAttribute('role', 'status');
    el.setAttribute('data-testid', 'flash');
    el.textContent = message;
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute('content') : '';
  }

  // ---------------------------------------------------------------------
  // Destructive actions ask first. A form (or the button that submits it)
  // with data-confirm is only sent when the person confirms; cancelling
  // sends nothing. Forms sent by htmx are asked through htmx:confirm.

  function sentByHtmx(form, submitter) {
    if (!window.htmx) return false;
    return form.hasAttribute('hx-post') || (submitter && submitter.hasAttribute('hx-post'));
  }

  document.addEventListener('submit', function (e) {
    var form = e.target;
    if (!(form instanceof HTMLFormElement)) return;
    var submitter = e.submitter || null;
    if (sentByHtmx(form, submitter)) return;
    var question = (submitter && submitter.getAttribute('data-confirm')) || form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) {
      e.preventDefault();
      e.stopImmediatePropagation();
      return;
    }
    // Fragments pushed over a websocket are shared by many people and
    // carry no form token; a plain submit takes it from the page.
    if ((form.getAttribute('method') || '').toLowerCase() === 'post') {
      var field = form.querySelector('input[name="_csrf"]');
      if (!field) {
        field = document.createElement('input');
        field.type = 'hidden';
        field.name = '_csrf';
        form.appendChild(field);
      }
      if (!field.value) field.value = csrfToken();
    }
  }, true);

  document.addEventListener('htmx:confirm', function (e) {
    var elt = e.detail.elt;
    var question = elt.getAttribute('data-confirm');
    if (!question && elt.form) question = elt.form.getAttribute('data-confirm');
    if (!question) return;
    e.preventDefault();
    if (window.confirm(question)) e.detail.issueRequest(true);
  });

  // ---------------------------------------------------------------------
  // htmx answers. A refused request is answered with its reason as a
  // fragment for the flash area (HX-Retarget); htmx does not swap 4xx
  // answers by default, so those are let through. Anything else that
  // fails is said in the flash area too.

  document.addEventListener('htmx:beforeSwap', function (e) {
    var xhr = e.detail.xhr;
    if (xhr && xhr.status >= 400 && xhr.getResponseHeader('HX-Retarget')) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });

  document.addEventListener('htmx:responseError', function (e) {
    var xhr = e.detail.xhr;
    if (xhr && xhr.getResponseHeader('HX-Retarget')) return;
    flash('Flightdeck answered ' + (xhr ? xhr.status : 'with an error') +
      '. Reload the page to see the current state before trying again.', true);
  });

  document.addEventListener('htmx:sendError', function () {
    flash('Flightdeck could not be reached, so nothing was sent. Check the connection and try again.', true);
  });

  // Requests from a page with an event log say which events it has, so
  // the answer can bring the ones it lacks.
  document.addEventListener('htmx:configRequest', function (e) {
    if (e.detail.verb !== 'post' || !document.getElementById('event-log')) return;
    e.detail.parameters['seen_event'] = String(maxEventID());
  });

  document.addEventListener('htmx:afterRequest', function (e) {
    if (!e.detail.successful) return;
    var elt = e.detail.elt;
    if (elt && elt.closest && elt.closest('#run-actions')) {
      var comment = document.getElementById('action-comment');
      if (comment) comment.value = '';
    }
  });

  // ---------------------------------------------------------------------
  // The event log: newest first, each event once. Live events arrive as
  // out-of-band fragments aimed at #event-log; they are put in order by
  // id, and ones the page already shows are dropped, so a reconnect or an
  // action's own answer never shows an event twice.

  var maxLogEntries = 500;

  function maxEventID() {
    var max = 0;
    var nodes = document.querySelectorAll('[data-event-id]');
    for (var i = 0; i < nodes.length; i++) {
      var id = parseInt(nodes[i].getAttribute('data-event-id'), 10);
      if (id > max) max = id;
    }
    return max;
  }

  function addEvents(log, source) {
    var items = Array.prototype.slice.call(source.querySelectorAll('[data-event-id]'));
    items.sort(function (a, b) {
      return parseInt(a.getAttribute('data-event-id'), 10) - parseInt(b.getAttribute('data-event-id'), 10);
    });
    items.forEach(function (item) {
      var id = parseInt(item.getAttribute('data-event-id'), 10);
      if (log.querySelector('[data-event-id="' + id + '"]')) return;
      var before = null;
      for (var n = log.firstElementChild; n; n = n.nextElementSibling) {
        if (parseInt(n.getAttribute('data-event-id'), 10) < id) { before = n; break; }
      }
      item.classList.add('fresh');
      log.insertBefore(item, before);
    });
    while (log.children.length > maxLogEntries) log.removeChild(log.lastElementChild);
  }

  document.addEventListener('htmx:oobBeforeSwap', function (e) {
    var target = e.detail.target;
    if (!target || target.id !== 'event-log') return;
    e.detail.shouldSwap = false;
    addEvents(target, e.detail.fragment);
  });

  // ---------------------------------------------------------------------
  // Websocket glue for pages with hx-ext="ws" ws-connect="...". The
  // extension reconnects with backoff; every time the socket opens the
  // page says how far it had seen, and the server sends exactly what it
  // missed. JSON messages (chart points) are handled here; HTML messages
  // are left to htmx, which swaps them into the page by id.

  function setLiveStatus(text, state) {
    var el = document.getElementById('ws-status');
    if (!el) return;
    el.textContent = text;
    el.setAttribute('data-state', state);
  }

  document.addEventListener('htmx:wsOpen', function (e) {
    var resume = { event: maxEventID() };
    var newest = newestPointTime();
    if (newest > 0) resume.window = new Date(newest * 1000).toISOString();
    e.detail.socketWrapper.send(JSON.stringify({ resume: resume }));
    setLiveStatus('live', 'open');
  });

  document.addEventListener('htmx:wsClose', function () {
    setLiveStatus('reconnecting…', 'closed');
  });

  document.addEventListener('htmx:wsBeforeMessage', function (e) {
    var message = e.detail.message;
    if (typeof message !== 'string' || message.charAt(0) !== '{') return;
    e.preventDefault();
    var data;
    try {
      data = JSON.parse(message);
    } catch (err) {
      return;
    }
    handleMessage(data);
  });

  function handleMessage(data) {
    if (data && data.type === 'points') {
      if (data.charts) updateChartSettings(data.charts);
      addPoints(data.points || []);
    }
  }

  // ---------------------------------------------------------------------
  // Charts: candidate against baseline per metric, with the threshold as
  // a dashed line and the warm-up shaded. Points are keyed by time per
  // series, so a point sent twice is shown once.

  var charts = {};
  var maxPointsPerSeries = 2000;
  var palette = {
    candidate: '#58a6ff',
    baseline: '#8b98a5',
    threshold: '#f85149',
    warmup: 'rgba(210, 153, 34, 0.12)',
    grid: '#2a333d',
    axis: '#8b98a5'
  };

  function scaleFor(unit) {
    return unit === 'percent' ? 100 : 1;
  }

  function formatValue(unit, v) {
    if (v == null || isNaN(v)) return '–';
    if (v === 0) return unit === 'percent' ? '0%' : unit === 'ms' ? '0 ms' : '0';
    if (unit === 'percent') return (Math.abs(v) < 10 ? v.toFixed(1) : v.toFixed(0)) + '%';
    if (unit === 'ms') return (v < 10 ? v.toFixed(1) : v.toFixed(0)) + ' ms';
    return String(Math.round(v * 100) / 100);
  }

  function chartState(el) {
    var key = el.getAttribute('data-chart');
    if (!charts[key] || charts[key].el !== el) {
      charts[key] = { key: key, el: el, series: { candidate: new Map(), baseline: new Map() }, plot: null };
    }
    return charts[key];
  }

  function numberAttr(el, name) {
    var raw = el.getAttribute(name);
    if (raw === null || raw === '') return null;
    var n = parseFloat(raw);
    return isNaN(n) ? null : n;
  }

  function newestPointTime() {
    var newest = 0;
    Object.keys(charts).forEach(function (k) {
      ['candidate', 'baseline'].forEach(function (cohort) {
        charts[k].series[cohort].forEach(function (_, t) { if (t > newest) newest = t; });
      });
    });
    return newest;
  }

  function trim(map) {
    if (map.size <= maxPointsPerSeries) return;
    var times = Array.from(map.keys()).sort(function (a, b) { return a - b; });
    for (var i = 0; i < times.length - maxPointsPerSeries; i++) map.delete(times[i]);
  }

  function addPoints(points) {
    var touched = {};
    points.forEach(function (p) {
      var ch = charts[p.metric];
      if (!ch || !ch.series[p.cohort] || typeof p.t !== 'number' || typeof p.v !== 'number') return;
      ch.series[p.cohort].set(p.t, p.v);
      touched[p.metric] = ch;
    });
    Object.keys(touched).forEach(function (k) {
      trim(touched[k].series.candidate);
      trim(touched[k].series.baseline);
      draw(touched[k]);
    });
  }

  function updateChartSettings(settings) {
    Object.keys(settings).forEach(function (k) {
      var ch = charts[k];
      if (!ch) return;
      var s = settings[k];
      if (typeof s.threshold === 'number') ch.el.setAttribute('data-threshold', String(s.threshold));
      ch.el.setAttribute('data-warmup-start', s.warmup_start ? String(s.warmup_start) : '');
      ch.el.setAttribute('data-warmup-end', s.warmup_end ? String(s.warmup_end) : '');
      draw(ch);
    });
  }

  function chartData(ch) {
    var unit = ch.el.getAttribute('data-unit');
    var k = scaleFor(unit);
    var seen = {};
    ch.series.candidate.forEach(function (_, t) { seen[t] = true; });
    ch.series.baseline.forEach(function (_, t) { seen[t] = true; });
    var xs = Object.keys(seen).map(Number).sort(function (a, b) { return a - b; });
    var pick = function (map) {
      return xs.map(function (t) { return map.has(t) ? map.get(t) * k : null; });
    };
    var threshold = numberAttr(ch.el, 'data-threshold');
    var data = [xs, pick(ch.series.candidate), pick(ch.series.baseline)];
    data.push(xs.map(function () { return threshold == null ? null : threshold * k; }));
    return data;
  }

  function shadeWarmup(u) {
    var el = u.root.parentNode;
    var start = numberAttr(el, 'data-warmup-start');
    var end = numberAttr(el, 'data-warmup-end');
    if (start == null || end == null || end <= start) return;
    var min = u.scales.x.min, max = u.scales.x.max;
    if (min == null || max == null || end < min || start > max) return;
    var x0 = u.valToPos(Math.max(start, min), 'x', true);
    var x1 = u.valToPos(Math.min(end, max), 'x', true);
    u.ctx.save();
    u.ctx.fillStyle = palette.warmup;
    u.ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
    u.ctx.restore();
  }

  // Charts grow with the page's type size, so a wall screen reads them
  // as well as a laptop.
  function rootSize() {
    return parseFloat(window.getComputedStyle(document.documentElement).fontSize) || 15;
  }

  function chartHeight() {
    return Math.round(11.5 * rootSize());
  }

  function plotOptions(ch, width) {
    var unit = ch.el.getAttribute('data-unit');
    var font = Math.round(0.78 * rootSize()) + 'px system-ui, sans-serif';
    var axis = { stroke: palette.axis, font: font, grid: { stroke: palette.grid, width: 1 }, ticks: { stroke: palette.grid, width: 1 } };
    var yAxis = Object.assign({}, axis, {
      size: Math.round(4 * rootSize()),
      // Counts have whole ticks.
      incrs: unit === 'count' ? [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] : undefined,
      values: function (u, vals) { return vals.map(function (v) { return formatValue(unit, v); }); }
    });
    return {
      width: width,
      height: chartHeight(),
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: function (u, lo, hi) { return [Math.min(0, lo || 0), Math.max(hi || 1, 0) * 1.1 || 1]; } } },
      axes: [axis, yAxis],
      series: [
        {},
        { label: 'candidate', stroke: palette.candidate, width: 2, spanGaps: true, value: function (u, v) { return formatValue(unit, v); } },
        { label: 'baseline', stroke: palette.baseline, width: 1.5, spanGaps: true, value: function (u, v) { return formatValue(unit, v); } },
        { label: 'threshold', stroke: palette.threshold, width: 1, dash: [6, 4], points: { show: false }, value: function (u, v) { return formatValue(unit, v); } }
      ],
      hooks: { drawClear: [shadeWarmup] }
    };
  }

  function draw(ch) {
    var total = ch.series.candidate.size + ch.series.baseline.size;
    ch.el.setAttribute('data-points', String(total));
    if (total === 0 || typeof window.uPlot !== 'function') return;
    var empty = ch.el.querySelector('.chart-empty');
    if (empty) empty.remove();
    var data = chartData(ch);
    if (!ch.plot) {
      ch.plot = new window.uPlot(plotOptions(ch, Math.max(ch.el.clientWidth, 200)), data, ch.el);
      if (window.ResizeObserver) {
        new ResizeObserver(function () {
          if (ch.el.clientWidth > 0) ch.plot.setSize({ width: ch.el.clientWidth, height: chartHeight() });
        }).observe(ch.el);
      }
    } else {
      ch.plot.setData(data);
    }
  }

  function initCharts() {
    var nodes = document.querySelectorAll('.chart[data-chart]');
    if (!nodes.length) return;
    var initial = {};
    var script = document.getElementById('chart-data');
    if (script) {
      try {
        initial = JSON.parse(script.textContent).series || {};
      } catch (err) {
        initial = {};
      }
    }
    for (var i = 0; i < nodes.length; i++) {
      var ch = chartState(nodes[i]);
      var byCohort = initial[ch.key] || {};
      ['candidate', 'baseline'].forEach(function (cohort) {
        (byCohort[cohort] || []).forEach(function (pair) { ch.series[cohort].set(pair[0], pair[1]); });
      });
      draw(ch);
    }
  }

  // ---------------------------------------------------------------------
  // Countdowns ("4m 12s left") and relative times ("12m 3s ago") tick
  // every second; swapped-in elements are found on the next tick.

  function spell(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    var d = Math.floor(s / 86400); s -= d * 86400;
    var h = Math.floor(s / 3600); s -= h * 3600;
    var m = Math.floor(s / 60); s -= m * 60;
    if (d > 0) return d + 'd ' + h + 'h';
    if (h > 0) return h + 'h ' + m + 'm';
    if (m > 0) return m + 'm ' + s + 's';
    return s + 's';
  }

  function tick() {
    var now = Date.now();
    var counters = document.querySelectorAll('[data-countdown-to]');
    for (var i = 0; i < counters.length; i++) {
      var until = Date.parse(counters[i].getAttribute('data-countdown-to'));
      if (isNaN(until)) continue;
      var left = until - now;
      counters[i].textContent = left > 0 ? spell(left) + ' left' : 'complete, waiting for the next check';
    }
    var times = document.querySelectorAll('time[data-ago]');
    for (var j = 0; j < times.length; j++) {
      var at = Date.parse(times[j].getAttribute('datetime'));
      if (isNaN(at)) continue;
      var ago = now - at;
      times[j].textContent = ago < 10000 ? 'just now' : spell(ago) + ' ago';
    }
  }

  function start() {
    initCharts();
    tick();
    window.setInterval(tick, 1000);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
