// English and Chinese labels. Static markup names its keys in data-i18n (text), data-i18n-placeholder,
// data-i18n-aria-label and data-i18n-title; code calls t(key, {vars}). The dictionaries are JSON files
// beside this module, and a unit test checks that both have the same keys and cover every key used.

const LANGS = ['en', 'zh'];
const STORE = 'kubetts.lang';
const dictionaries = {};
const listeners = [];
let lang = 'en';

async function dictionary(code) {
  if (!dictionaries[code]) {
    const resp = await fetch(`ui/i18n/${code}.json`);
    if (!resp.ok) throw new Error(`cannot load labels for ${code}: HTTP ${resp.status}`);
    dictionaries[code] = await resp.json();
  }
  return dictionaries[code];
}

export function preferredLanguage() {
  const saved = localStorage.getItem(STORE);
  if (LANGS.includes(saved)) return saved;
  return (navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

export function currentLanguage() {
  return lang;
}

/** The locale for numbers, dates and relative times. */
export function locale() {
  return lang === 'zh' ? 'zh-CN' : 'en';
}

export function t(key, vars = {}) {
  const text = dictionaries[lang]?.[key] ?? dictionaries.en?.[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

export function apply(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-aria-label]')) el.setAttribute('aria-label', t(el.dataset.i18nAriaLabel));
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
}

/** Called after every language change, so dynamic text can be drawn again. */
export function onLanguageChange(fn) {
  listeners.push(fn);
}

export async function setLanguage(code) {
  if (!LANGS.includes(code)) code = 'en';
  await Promise.all([dictionary('en'), dictionary(code)]);
  lang = code;
  localStorage.setItem(STORE, code);
  document.documentElement.lang = code === 'zh' ? 'zh-CN' : 'en';
  document.title = t('app.title');
  apply();
  for (const fn of listeners) fn(code);
}
