// kube-tts web UI: plain ES modules, no build step, nothing loaded from anywhere but this router
// (docs/adr/0020-web-ui-in-the-router.md).

import { ApiError, api, apiKey, forgetApiKey, setApiKey } from './api.js';
import { $, showError } from './dom.js';
import { onLanguageChange, preferredLanguage, setLanguage, t } from './i18n.js';
import { initProductions, reload as reloadJobs } from './productions.js';
import { initSpeak, selectVoice } from './speak.js';
import { initStatus, refreshStatus } from './status.js';
import { loadConfig, refreshModels, refreshVoices } from './store.js';
import { initVoices, reload as reloadVoices } from './voices.js';

const THEME = 'kubetts.theme';
const TABS = ['speak', 'voices', 'productions', 'status'];
// while a panel is open, what it shows is refreshed this often (ms)
const POLL = { speak: 10000, status: 5000, voices: 5000, productions: 3000 };
let pollTimer = null;

// --- theme ------------------------------------------------------------------------------------

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  $('#theme').setAttribute('aria-pressed', String(theme === 'dark'));
}

function initTheme() {
  const saved = localStorage.getItem(THEME);
  const dark = saved ? saved === 'dark' : window.matchMedia('(prefers-color-scheme: dark)').matches;
  applyTheme(dark ? 'dark' : 'light');
  $('#theme').addEventListener('click', () => {
    const next = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
    localStorage.setItem(THEME, next);
    applyTheme(next);
  });
}

// --- tabs (WAI-ARIA tabs: arrow keys move between them) -----------------------------------------

function activate(name, focus = false) {
  for (const tab of TABS) {
    const button = $(`#tab-${tab}`);
    const selected = tab === name;
    button.setAttribute('aria-selected', String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`#panel-${tab}`).hidden = !selected;
    if (selected && focus) button.focus();
  }
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
  clearInterval(pollTimer);
  pollTimer = null;
  if (!apiKey()) return;
  const refresh = { speak: reloadModels, status: refreshStatus, voices: reloadVoices, productions: reloadJobs }[name];
  refresh();
  pollTimer = setInterval(() => document.visibilityState === 'visible' && refresh(), POLL[name]);
}

/** The models' states change (they sleep when idle, wake on a request): keep the Speak panel current. */
async function reloadModels() {
  try {
    await refreshModels();
  } catch (err) {
    showError($('#speak-error'), err);
  }
}

function initTabs() {
  for (const [i, tab] of TABS.entries()) {
    const button = $(`#tab-${tab}`);
    button.addEventListener('click', () => activate(tab));
    button.addEventListener('keydown', (ev) => {
      const step = { ArrowRight: 1, ArrowLeft: -1, Home: -i, End: TABS.length - 1 - i }[ev.key];
      if (step === undefined) return;
      ev.preventDefault();
      activate(TABS[(i + step + TABS.length) % TABS.length], true);
    });
  }
}

const currentTab = () => TABS.find((tab) => $(`#tab-${tab}`).getAttribute('aria-selected') === 'true');

// --- the API key ------------------------------------------------------------------------------

function showKeyPanel(show) {
  $('#key-needed').hidden = Boolean(apiKey());
  $('#key-panel').hidden = !show;
  $('#key-open').setAttribute('aria-expanded', String(show));
  $('#key-forget').hidden = !apiKey();
  $('#key-state').textContent = apiKey() ? t('key.saved') : t('key.none');
  if (show) $('#key-input').focus();
}

/** Load what every panel needs; a rejected key reopens the key form with the API's message. */
async function loadAll() {
  try {
    await Promise.all([refreshModels(), refreshVoices()]);
    showError($('#key-error'), null);
    activate(currentTab());
    return true;
  } catch (err) {
    showError($('#key-error'), err);
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) showKeyPanel(true);
    return false;
  }
}

function initKey() {
  $('#key-open').addEventListener('click', () => showKeyPanel($('#key-panel').hidden));
  $('#key-forget').addEventListener('click', () => {
    forgetApiKey();
    $('#key-input').value = '';
    showKeyPanel(true);
  });
  $('#key-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const key = $('#key-input').value.trim();
    if (!key) return;
    $('#key-save').disabled = true;
    try {
      await api.models(key); // the key is kept only if the router accepts it
      setApiKey(key);
      $('#key-input').value = '';
      showError($('#key-error'), null);
      if (await loadAll()) showKeyPanel(false);
    } catch (err) {
      showError($('#key-error'), err);
    } finally {
      $('#key-save').disabled = false;
    }
  });
  onLanguageChange(() => {
    $('#key-state').textContent = apiKey() ? t('key.saved') : t('key.none');
  });
}

// --- start ------------------------------------------------------------------------------------

async function main() {
  initTheme();
  await setLanguage(preferredLanguage());
  $('#lang').value = preferredLanguage();
  $('#lang').addEventListener('change', (ev) => setLanguage(ev.target.value));
  await loadConfig().catch(() => {}); // the router's defaults are the fallback
  initTabs();
  initKey();
  initSpeak();
  initVoices((model, voice) => {
    selectVoice(model, voice);
    activate('speak', true);
  });
  initProductions();
  initStatus();
  const wanted = location.hash.slice(1);
  activate(TABS.includes(wanted) ? wanted : 'speak');
  if (apiKey()) await loadAll();
  else showKeyPanel(true);
  document.body.dataset.ready = 'true';
}

main().catch((err) => {
  const box = $('#key-error');
  box.textContent = `kube-tts UI failed to start: ${err.message}`;
  box.hidden = false;
  $('#key-panel').hidden = false;
});
