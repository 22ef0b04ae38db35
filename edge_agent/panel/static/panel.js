// The cashier panel: shows each scan the agent reports on /events (server-sent events, no polling).
"use strict";

const HEADLINES = {
  idle: "等待扫码 · Waiting for a scan",
  member: "会员 · Member",
  rejected: "会员码被拒绝 · Member code refused",
  payment: "付款码（请在收银机上收款）· Payment code: take payment on the POS",
  product: "商品 · Product",
  coupon: "优惠券已核销 · Coupon accepted",
  "coupon-refused": "优惠券被拒绝 · Coupon refused",
  unknown: "无法识别 · Not recognised",
};

const AGAIN = "会员（已扫描）· Member, already scanned";

// Central's value tiers (the value_tier tag); another value is shown as it comes.
const TIERS = {
  loyal: "忠诚 · Loyal",
  potential: "潜力 · Potential",
  dormant: "沉睡 · Dormant",
  other: "其他 · Other",
};

function text(id, value) {
  document.getElementById(id).textContent = value || "";
}

function show(card) {
  const panel = document.getElementById("panel");
  const member = card.kind === "member" ? card.member : null;
  // A repeat of the code this register just accepted: the same member, marked as already scanned.
  text("headline", member && card.again ? AGAIN : HEADLINES[card.kind] || HEADLINES.unknown);
  document.getElementById("member").hidden = !member;
  text("member-name", member ? member.name || "—" : "");
  text("member-phone", member ? member.phone || "—" : "");
  text("member-id", member ? member.id : "");
  const tier = member && Object.hasOwn(TIERS, member.tier) ? TIERS[member.tier] : member && member.tier;
  text("member-tier", member ? tier || "—" : "");
  const list = document.getElementById("coupons");
  list.replaceChildren();
  for (const coupon of card.coupons || []) {
    const item = document.createElement("li");
    item.textContent = coupon.hint ? coupon.title + " (" + coupon.hint + ")" : coupon.title;
    list.append(item);
  }
  if (member && !list.children.length) {
    const none = document.createElement("li");
    none.className = "none";
    none.textContent = "无 · None";
    list.append(none);
  }
  const refused = card.kind === "rejected" || card.kind === "coupon-refused";
  const detail = {
    product: card.code,
    coupon: [card.campaign, card.value].filter(Boolean).join(" · "),
  };
  text("detail", detail[card.kind] || "");
  text("reason-zh", refused ? card.zh : "");
  text("reason-en", refused ? card.en : "");
  panel.dataset.reason = refused ? card.reason : "";
  panel.dataset.state = card.kind;
  panel.dataset.again = member && card.again ? "true" : "";
  panel.dataset.seq = String(card.seq);
}

function connect() {
  const link = document.getElementById("link");
  const events = new EventSource("/events");
  events.addEventListener("scan", (event) => show(JSON.parse(event.data)));
  events.addEventListener("open", () => {
    link.dataset.state = "up";
    link.textContent = "已连接 · Connected";
  });
  events.addEventListener("error", () => {
    link.dataset.state = "down";
    link.textContent = "与收银代理的连接中断，正在重连 · Lost the agent, reconnecting";
  });
}

connect();
