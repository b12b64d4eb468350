// Small DOM helpers. Text always goes in as text nodes, never parsed as HTML: API data cannot inject markup.

export const $ = (selector, root = document) => root.querySelector(selector);

/** h('td', {class: 'x', dataset: {id: 1}, onclick: fn}, 'text', child) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name in el && typeof value !== 'string') el[name] = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** A table cell that carries its column's name: on a phone the rows stack and the name shows beside it. */
export function cell(label, ...children) {
  return h('td', { dataset: { label } }, h('span', { class: 'value' }, ...children));
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** Show an error in words: the API's own message, its code and HTTP status. */
export function showError(el, err) {
  if (!err) {
    el.hidden = true;
    el.textContent = '';
    return;
  }
  el.textContent = err.describe ? err.describe() : String(err.message || err);
  el.hidden = false;
}

export function formatSeconds(seconds, digits = 2) {
  return Number.isFinite(seconds) ? `${seconds.toFixed(digits)} s` : '—';
}
