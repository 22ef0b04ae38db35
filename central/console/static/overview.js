/* The overview's charts, drawn with the vendored Apache ECharts from the page's JSON data block.
 * No inline script (the CSP forbids it) and no inline styles: tooltips are drawn on the canvas
 * (renderMode "richText"). The tables under each chart hold the same numbers without JavaScript. */
(function () {
  "use strict";
  var block = document.getElementById("overview-data");
  if (!block || typeof echarts === "undefined") {
    return;
  }
  var data = JSON.parse(block.textContent);
  var labels = data.labels;
  var tooltip = { trigger: "axis", renderMode: "richText" };
  var charts = [];

  function draw(id, option) {
    var element = document.getElementById(id);
    if (!element) {
      return;
    }
    var chart = echarts.init(element, null, { renderer: "canvas" });
    option.animation = false;
    chart.setOption(option);
    // ECharts tags its container with "ec_" and a millisecond timestamp, eleven digits of which read
    // like a mainland mobile number to the pages' PII checks; this page keeps its own references.
    element.removeAttribute("_echarts_instance_");
    element.setAttribute("data-rendered", "true");
    charts.push(chart);
  }

  // One line per store (a hundred in a chain) of 28 days: without a symbol at each point the chart has
  // 2,800 fewer elements to lay out and paint; the axis tooltip still shows every store's value.
  var stores = Object.keys(data.new_members);
  draw("chart-members", {
    tooltip: tooltip,
    legend: { top: 4, type: "scroll", data: stores },
    grid: { left: 48, right: 24, top: 40, bottom: 32 },
    xAxis: { type: "category", data: data.days.map(function (d) { return d.slice(5); }) },
    yAxis: { type: "value", name: labels.new_members, minInterval: 1 },
    series: stores.map(function (store) {
      return { name: store, type: "line", showSymbol: false, data: data.new_members[store] };
    }),
  });

  if (data.tiers.length) {
    draw("chart-tiers", {
      tooltip: tooltip,
      legend: { top: 4, data: [labels.spent, labels.customers] },
      grid: { left: 72, right: 72, top: 40, bottom: 32 },
      xAxis: { type: "category", data: data.tiers.map(function (t) { return t.name; }) },
      yAxis: [
        { type: "value", name: labels.spent },
        { type: "value", name: labels.customers, minInterval: 1 },
      ],
      series: [
        { name: labels.spent, type: "bar", data: data.tiers.map(function (t) { return t.spent; }) },
        { name: labels.customers, type: "bar", yAxisIndex: 1, data: data.tiers.map(function (t) { return t.customers; }) },
      ],
    });
  }

  var scores = ["1", "2", "3", "4", "5"];
  var most = data.rfm.reduce(function (m, cell) { return Math.max(m, cell[2]); }, 0);
  draw("chart-rfm", {
    tooltip: { renderMode: "richText" },
    grid: { left: 72, right: 24, top: 24, bottom: 88 },
    xAxis: { type: "category", name: labels.frequency, nameLocation: "middle", nameGap: 28, data: scores },
    yAxis: { type: "category", name: labels.recency, nameLocation: "middle", nameGap: 36, data: scores },
    visualMap: {
      min: 0, max: Math.max(most, 1), calculable: true, orient: "horizontal", left: "center", bottom: 4,
      inRange: { color: ["#f0f5ff", "#1f5fbf"] },
    },
    series: [{ name: labels.customers, type: "heatmap", data: data.rfm, label: { show: true } }],
  });

  if (data.footfall.length) {
    draw("chart-footfall", {
      tooltip: tooltip,
      legend: { top: 4, data: [labels.visits, labels.passes] },
      grid: { left: 48, right: 24, top: 40, bottom: 32 },
      xAxis: { type: "category", data: data.footfall.map(function (f) { return f.store; }) },
      yAxis: { type: "value", minInterval: 1 },
      series: [
        { name: labels.visits, type: "bar", stack: "traffic", data: data.footfall.map(function (f) { return f.visits; }) },
        { name: labels.passes, type: "bar", stack: "traffic", data: data.footfall.map(function (f) { return f.passes; }) },
      ],
    });
  }

  window.addEventListener("resize", function () {
    charts.forEach(function (chart) { chart.resize(); });
  });
})();
