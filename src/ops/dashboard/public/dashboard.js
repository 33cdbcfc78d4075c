/* global document, window, uPlot, EventSource */
// The live dashboard: one SSE frame per second from /dashboard/stream, plotted with uPlot.
(function () {
  'use strict';
  var POINTS = 120;
  var TRANSPORTS = ['streamable', 'sse', 'ws'];
  var CHANNELS = [
    's1_operations',
    's2_coordination',
    's3_control',
    's4_intelligence',
    's5_policy',
    'algedonic',
  ];
  var COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];

  function $(id) {
    return document.getElementById(id);
  }

  function fmt(n, digits) {
    if (n === null || n === undefined || Number.isNaN(n)) return '–';
    return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits === undefined ? 1 : digits });
  }

  function figures(id, pairs) {
    var el = $(id);
    el.textContent = '';
    pairs.forEach(function (p) {
      var f = document.createElement('span');
      f.className = 'figure';
      f.dataset.figure = p[0];
      var label = document.createElement('span');
      label.textContent = p[0];
      var value = document.createElement('b');
      value.textContent = p[1];
      f.append(label, value);
      el.append(f);
    });
  }

  function table(id, head, rows) {
    var el = $(id);
    el.textContent = '';
    var tr = document.createElement('tr');
    head.forEach(function (h) {
      var th = document.createElement('th');
      th.textContent = h;
      tr.append(th);
    });
    el.append(tr);
    rows.forEach(function (row) {
      var r = document.createElement('tr');
      row.forEach(function (cell) {
        var td = document.createElement('td');
        if (cell && typeof cell === 'object') {
          td.textContent = cell.text;
          td.className = cell.cls;
        } else td.textContent = cell;
        r.append(td);
      });
      el.append(r);
    });
  }

  function state(s) {
    return { text: s, cls: 'state-' + s };
  }

  // One chart: a time axis and named series; data kept as columns of at most POINTS values.
  function Chart(id, names) {
    this.el = $(id);
    this.data = [[]].concat(
      names.map(function () {
        return [];
      }),
    );
    var series = [{}].concat(
      names.map(function (n, i) {
        return { label: n, stroke: COLOURS[i % COLOURS.length], width: 1.5, spanGaps: true };
      }),
    );
    this.plot = new uPlot(
      { width: Math.max(this.el.clientWidth, 300), height: 160, series: series, legend: { show: true } },
      this.data,
      this.el,
    );
  }
  Chart.prototype.push = function (t, values) {
    this.data[0].push(t / 1000);
    for (var i = 0; i < values.length; i++) this.data[i + 1].push(values[i]);
    if (this.data[0].length > POINTS)
      this.data.forEach(function (c) {
        c.shift();
      });
    this.plot.setData(this.data);
  };
  Chart.prototype.resize = function () {
    this.plot.setSize({ width: Math.max(this.el.clientWidth, 300), height: 160 });
  };

  var charts = {
    connections: new Chart('connections-chart', TRANSPORTS),
    throughput: new Chart('throughput-chart', ['in/s', 'out/s']),
    latency: new Chart('latency-chart', ['p50 ms', 'p90 ms', 'p99 ms']),
    errors: new Chart('errors-chart', ['errors/s', 'error rate %']),
    pools: new Chart('pools-chart', ['max utilisation %', 'queue depth']),
    vsm: new Chart('vsm-chart', CHANNELS),
  };
  window.addEventListener('resize', function () {
    Object.keys(charts).forEach(function (k) {
      charts[k].resize();
    });
  });

  function sum(record) {
    return Object.keys(record).reduce(function (n, k) {
      return n + record[k];
    }, 0);
  }

  function render(f) {
    var t = f.t;
    charts.connections.push(
      t,
      TRANSPORTS.map(function (k) {
        return f.connections[k];
      }),
    );
    figures(
      'connections-figures',
      TRANSPORTS.map(function (k) {
        return [k, fmt(f.connections[k], 0) + ' conn / ' + fmt(f.sessions[k], 0) + ' sess'];
      }),
    );

    var inRate = sum(f.messagesInPerSecond);
    var outRate = sum(f.messagesOutPerSecond);
    charts.throughput.push(t, [inRate, outRate]);
    figures('throughput-figures', [
      ['in/s', fmt(inRate)],
      ['out/s', fmt(outRate)],
      ['messages in', fmt(f.messagesTotal.in, 0)],
      ['messages out', fmt(f.messagesTotal.out, 0)],
    ]);

    var l = f.latencyMs;
    charts.latency.push(t, [l.p50, l.p90, l.p99]);
    figures('latency-figures', [
      ['p50', fmt(l.p50) + ' ms'],
      ['p90', fmt(l.p90) + ' ms'],
      ['p99', fmt(l.p99) + ' ms'],
      ['requests (10 s)', fmt(l.count, 0)],
    ]);

    charts.errors.push(t, [f.errors.perSecond, f.errors.rate * 100]);
    figures('errors-figures', [
      ['errors/s', fmt(f.errors.perSecond)],
      ['error rate (1 min)', fmt(f.errors.rate * 100, 2) + ' %'],
      ['errors', fmt(f.errors.total, 0)],
      ['transport failovers', fmt(f.transportFailovers, 0)],
    ]);
    var breakerRows = TRANSPORTS.map(function (k) {
      return ['transport ' + k, state(f.transportBreakers[k])];
    });
    f.replicas.forEach(function (r) {
      breakerRows.push(['replica ' + r.id, state(r.breaker)]);
    });
    table('breakers-table', ['breaker', 'state'], breakerRows);

    var maxUtil = f.pools.reduce(function (m, p) {
      return Math.max(m, p.utilisation);
    }, 0);
    charts.pools.push(t, [maxUtil * 100, f.queueDepth]);
    figures('pools-figures', [
      ['max utilisation', fmt(maxUtil * 100) + ' %'],
      ['queue depth', fmt(f.queueDepth, 0)],
      ['pools', fmt(f.pools.length, 0)],
    ]);
    table(
      'pools-table',
      ['replica', 'in use', 'size', 'max', 'pending'],
      f.pools.map(function (p) {
        return [p.replica, p.inUse, p.size, p.max, p.pending];
      }),
    );

    charts.vsm.push(
      t,
      CHANNELS.map(function (c) {
        return f.vsmPerSecond[c] || 0;
      }),
    );
    figures(
      'vsm-figures',
      CHANNELS.map(function (c) {
        return [c, fmt(f.vsmTotal[c], 0)];
      }),
    );

    var list = $('alerts-list');
    list.textContent = '';
    if (f.alerts.length === 0) {
      var none = document.createElement('li');
      none.className = 'none';
      none.textContent = 'none';
      list.append(none);
    }
    f.alerts.forEach(function (a) {
      var li = document.createElement('li');
      li.className = 'sev-' + a.severity;
      li.dataset.alert = a.name;
      li.textContent = a.name + ': ' + a.summary + ' (' + fmt(a.value, 3) + ')';
      list.append(li);
    });
    var recent = $('alerts-recent');
    recent.textContent = '';
    f.recentAlerts
      .slice()
      .reverse()
      .forEach(function (e) {
        var li = document.createElement('li');
        li.textContent = new Date(e.at).toLocaleTimeString() + ' ' + e.type + ' ' + e.name;
        recent.append(li);
      });

    table(
      'replicas-table',
      ['service', 'replica', 'state', 'breaker', 'sessions'],
      f.replicas.map(function (r) {
        return [r.service, r.id, state(r.state), state(r.breaker), r.sessions];
      }),
    );
    figures('heap-figures', [
      ['heap used', fmt(f.heap.used / 1048576) + ' MiB'],
      // Against the limit, as MemoryPressure judges it: V8 sizes the heap to what is used, so used
      // of the current size is near 100 % at rest and says nothing.
      ['of its limit', fmt((f.heap.used / f.heap.limit) * 100) + ' %'],
      ['limit', fmt(f.heap.limit / 1048576) + ' MiB'],
    ]);

    $('updated').textContent = 'updated ' + new Date(t).toLocaleTimeString();
    document.body.dataset.frames = String(Number(document.body.dataset.frames || 0) + 1);
  }

  var source = new EventSource('/dashboard/stream');
  source.onopen = function () {
    $('status').textContent = 'live';
    $('status').className = 'status live';
  };
  source.onerror = function () {
    $('status').textContent = 'reconnecting…';
    $('status').className = 'status';
  };
  source.onmessage = function (e) {
    render(JSON.parse(e.data));
  };
})();
