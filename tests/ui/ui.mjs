// Drives the router's web UI in Debian's headless chromium (playwright-core, no browser download) for
// tests/integration/test_ui.py: `KUBETTS_UI_API_KEY=… KUBETTS_UI_ADMIN_API_KEY=… node tests/ui/ui.mjs
// <scenario> '<json options>'`.
//
// Each scenario acts as a user would (keyboard and mouse on labelled controls), waits for what the
// page shows, saves screenshots under options.artifacts, and prints one JSON line of observations
// (texts, audio measurements, accessibility violations, third-party requests, CSP violations, page
// errors) for the Python test to assert on. A step that cannot happen (an element never appears)
// throws: the process exits 1 with the reason and a screenshot of the moment.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const WAIT = 60_000;

const [scenarioName, rawOptions] = process.argv.slice(2);
const opts = JSON.parse(rawOptions || '{}');
// the keys come through the environment, not the command line (which `ps` shows)
opts.key = process.env.KUBETTS_UI_API_KEY;
opts.admin_key = process.env.KUBETTS_UI_ADMIN_API_KEY;
const origin = new URL(opts.url).origin;

// --- the browser ---------------------------------------------------------------------------------

async function launch({ viewport = DESKTOP, colorScheme = 'light', locale = 'en-US' } = {}) {
  const profile = mkdtempSync(path.join(tmpdir(), 'kubetts-ui-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: opts.chromium || '/usr/bin/chromium',
    headless: true,
    viewport,
    colorScheme,
    locale,
    acceptDownloads: true,
    isMobile: viewport.width < 600,
    hasTouch: viewport.width < 600,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      '--no-first-run',
      // a fake microphone (a beep) that needs no permission prompt
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
    ],
  });
  const watch = { thirdParty: [], csp: [], pageErrors: [], consoleErrors: [] };
  const page = context.pages()[0] ?? (await context.newPage());
  context.on('request', (req) => {
    const url = req.url();
    if (!url.startsWith(`${origin}/`) && !url.startsWith('blob:') && !url.startsWith('data:')) watch.thirdParty.push(url);
  });
  page.on('pageerror', (err) => watch.pageErrors.push(String(err)));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (/Content.Security.Policy/i.test(text)) watch.csp.push(text);
    else watch.consoleErrors.push(text);
  });
  page.on('dialog', (dialog) => dialog.accept());
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, page, watch, close };
}

async function open(page, hash = '') {
  await page.goto(`${opts.url}/${hash}`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: WAIT });
}

async function shot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0)); // the sticky top bar belongs at the top of a full-page shot
  await page.screenshot({ path: path.join(opts.artifacts, `${name}.png`), fullPage: true });
  return `${name}.png`;
}

/** axe-core in the page (evaluated through the DevTools protocol, so the page's CSP does not block it). */
async function axe(page, label) {
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] }),
  );
  return result.violations.map((v) => ({
    where: label,
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
  }));
}

async function enterKey(page, key) {
  if (await page.locator('#key-panel').isHidden()) await page.getByRole('button', { name: 'API key' }).click();
  await page.getByRole('textbox', { name: 'API key' }).fill(key);
  await page.getByRole('button', { name: 'Use this key' }).click();
}

async function signIn(page, key) {
  await enterKey(page, key);
  await page.waitForSelector('#key-panel', { state: 'hidden', timeout: WAIT });
  await page.waitForSelector(`#model option[value="${opts.model}"]`, { state: 'attached', timeout: WAIT });
}

async function tab(page, name) {
  await page.getByRole('tab', { name }).click();
}

const text = (page, selector) => page.locator(selector).innerText();

/** Generate with what the form holds; returns once the page says Done (or shows an error). */
async function generate(page, { watchStatus = false } = {}) {
  if (watchStatus) {
    // every text the status line takes, however briefly: a MutationObserver's records keep each
    // text node that was put in, even when two changes land within one task (polling misses those)
    await page.evaluate(() => {
      const el = document.querySelector('#speak-status');
      window.__statusSeen = [];
      new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes) if (n.textContent) window.__statusSeen.push(n.textContent);
      }).observe(el, { childList: true });
    });
  }
  const seenSoFar = async () => (watchStatus ? [...new Set(await page.evaluate(() => window.__statusSeen))] : []);
  await page.getByRole('button', { name: 'Generate' }).click();
  const deadline = Date.now() + WAIT;
  for (;;) {
    const status = await text(page, '#speak-status');
    if (await page.locator('#speak-error').isVisible()) {
      return { ok: false, error: await text(page, '#speak-error'), status, seen: await seenSoFar() };
    }
    if (status === 'Done.' || status === '完成。') break;
    if (Date.now() > deadline) throw new Error(`generation did not finish; status: ${status}`);
    await page.waitForTimeout(100);
  }
  return {
    ok: true,
    seen: await seenSoFar(),
    ttfa: await text(page, '#m-ttfa'),
    total: await text(page, '#m-total'),
    length: await text(page, '#m-length'),
  };
}

/** What the <audio> element holds: it must load (decode) the clip; and it must play. */
async function playerFacts(page) {
  return page.evaluate(async () => {
    const el = document.querySelector('#player');
    if (el.readyState < 1) await new Promise((resolve, reject) => {
      el.addEventListener('loadedmetadata', resolve, { once: true });
      el.addEventListener('error', () => reject(new Error(`audio element: ${el.error?.message || el.error?.code}`)), { once: true });
    });
    const duration = el.duration;
    el.currentTime = 0;
    await el.play();
    await new Promise((resolve) => setTimeout(resolve, 400));
    const advanced = el.currentTime;
    el.pause();
    const download = document.querySelector('#download');
    return { src: el.src, duration, advanced, downloadHref: download.href, downloadName: download.download };
  });
}

/** Save the clip through the page's Download link; decode the very bytes with the browser's decoder. */
async function downloadAndDecode(page, name) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#download').click()]);
  const file = path.join(opts.artifacts, name);
  await download.saveAs(file);
  const b64 = readFileSync(file).toString('base64');
  const decoded = await page.evaluate(async (data) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const buffer = await new OfflineAudioContext(1, 1, 44100).decodeAudioData(bytes.buffer);
    const samples = buffer.getChannelData(0);
    let sum = 0;
    for (const s of samples) sum += s * s;
    return { duration: buffer.duration, sampleRate: buffer.sampleRate, rms: Math.sqrt(sum / samples.length) };
  }, b64);
  return { file, suggested: download.suggestedFilename(), decoded };
}

async function fillSpeak(page, { model = opts.model, voice = 'default', text: input, format = 'wav' }) {
  const panel = page.locator('#panel-speak');
  await panel.getByLabel('Model', { exact: true }).selectOption(model);
  await panel.getByLabel('Voice', { exact: true }).selectOption(voice);
  await panel.getByLabel('Text', { exact: true }).fill(input);
  await panel.getByLabel('Format', { exact: true }).selectOption(format);
}

// --- scenarios ------------------------------------------------------------------------------------

const THREE_SENTENCES =
  'The web interface streams this sentence as it is made. A second sentence follows the first one. ' +
  'And a third sentence closes the test, so the clip lasts several seconds.';

const scenarios = {
  /** Speak with the sample model: streamed WAV, decodable and of plausible length; then MP3 whole. */
  speak: {
    launch: {},
    async run(page, out) {
      await open(page);
      out.keyPanelVisible = await page.locator('#key-panel').isVisible();
      out.axe.push(...(await axe(page, 'key form')));
      await signIn(page, opts.key);
      out.counter = await text(page, '#text-count');
      await fillSpeak(page, { text: THREE_SENTENCES });
      out.counterAfter = await text(page, '#text-count');
      out.formatHint = await text(page, '#format-hint');
      out.advancedNote = await page.locator('#advanced').evaluate((d) => {
        d.open = true;
        return d.querySelector('#advanced-none').hidden ? 'fields' : d.querySelector('#advanced-none').textContent;
      });
      out.wav = await generate(page);
      if (out.wav.ok) {
        out.wav.player = await playerFacts(page);
        out.wav.download = await downloadAndDecode(page, 'speech.wav');
      }
      out.axe.push(...(await axe(page, 'speak after a clip')));
      out.screenshots.push(await shot(page, 'speak-desktop-light'));

      await fillSpeak(page, { text: 'Compressed formats play once complete.', format: 'mp3' });
      out.mp3 = await generate(page);
      if (out.mp3.ok) {
        out.mp3.player = await playerFacts(page);
        out.mp3.download = await downloadAndDecode(page, 'speech.mp3');
      }
      // every other format: played by the <audio> element once complete (PCM wrapped as WAV)
      out.formats = {};
      for (const format of ['pcm', 'opus', 'aac', 'flac']) {
        await fillSpeak(page, { text: `This clip is ${format}.`, format });
        const result = await generate(page);
        if (result.ok) result.player = await playerFacts(page);
        out.formats[format] = result;
      }
      out.history = await page.locator('#history > li').allInnerTexts();
      out.sessionKeyStored = await page.evaluate(() => Boolean(sessionStorage.getItem('kubetts.apiKey')));
      out.localStorageKeys = await page.evaluate(() => Object.keys(localStorage));
    },
  },

  /** Word timestamps: the words appear and are marked in order while the clip streams and again when it
   * replays; the captions download as .vtt and .srt. */
  words: {
    launch: {},
    async run(page, out) {
      await open(page);
      await signIn(page, opts.key);
      await fillSpeak(page, { text: THREE_SENTENCES });
      const box = page.getByLabel('Highlight words and make captions');
      out.checkboxEnabled = await box.isEnabled();
      await box.check();
      // every word marked as spoken, in the order the marks came
      await page.evaluate(() => {
        window.__marked = [];
        new MutationObserver((records) => {
          for (const r of records) {
            const el = r.target;
            if (el.classList?.contains('spoken')) window.__marked.push([...el.parentNode.children].indexOf(el));
          }
        }).observe(document.querySelector('#words'), { subtree: true, attributes: true, attributeFilter: ['class'] });
      });
      out.result = await generate(page);
      // the clip arrives faster than it plays: the marks reach the last word once playback does
      await page.waitForFunction(() => document.querySelector('#words .word:last-child')?.classList.contains('spoken'), null, {
        timeout: WAIT,
      });
      out.words = await page.locator('#words .word').allInnerTexts();
      out.starts = await page.locator('#words .word').evaluateAll((els) => els.map((e) => Number(e.dataset.start)));
      out.markedWhileStreaming = await page.evaluate(() => window.__marked.splice(0));
      out.screenshots.push(await shot(page, 'speak-words'));
      out.axe.push(...(await axe(page, 'speak with words')));
      // replay in the <audio> element: the marks follow it from the start again
      await page.evaluate(async () => {
        const el = document.querySelector('#player');
        el.currentTime = 0;
        await el.play();
        await new Promise((resolve) => setTimeout(resolve, 1500));
        el.pause();
      });
      out.markedOnReplay = await page.evaluate(() => window.__marked.splice(0));
      out.captions = {};
      for (const format of ['vtt', 'srt']) {
        const link = page.locator(`#captions-${format}`);
        const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
        const file = path.join(opts.artifacts, `captions.${format}`);
        await download.saveAs(file);
        out.captions[format] = { name: download.suggestedFilename(), text: readFileSync(file, 'utf8'), label: await link.innerText() };
      }
    },
  },

  /** Status lists the sample model and GPU nodes; Sleep it, then Speak shows it waking and still speaks. */
  status_wake: {
    launch: { colorScheme: 'dark' },
    async run(page, out) {
      await open(page);
      await signIn(page, opts.admin_key);
      await tab(page, 'Status');
      const row = page.locator(`#models-table tr[data-model="${opts.model}"]`);
      await row.waitFor({ timeout: WAIT });
      out.theme = await page.evaluate(() => document.documentElement.dataset.theme);
      out.modelRow = await row.locator('th, td').allInnerTexts();
      out.podRows = await page.locator('#pods-table tbody tr').allInnerTexts();
      out.nodeRows = await page.locator('#nodes-table tbody tr').allInnerTexts();
      out.updated = await text(page, '#status-updated');
      out.axe.push(...(await axe(page, 'status (dark)')));
      out.screenshots.push(await shot(page, 'status-desktop-dark'));

      await row.getByRole('button', { name: `Put ${opts.model} to sleep` }).click();
      await page.waitForFunction(
        (m) => document.querySelector(`#models-table tr[data-model="${m}"]`)?.innerText.includes('Asleep'),
        opts.model,
        { timeout: WAIT },
      );
      out.asleepRow = await row.locator('th, td').allInnerTexts();
      out.screenshots.push(await shot(page, 'status-asleep-dark'));

      // Wake brings it back without a request; then to sleep again, for Speak to wake
      const wakeClicked = Date.now();
      await row.getByRole('button', { name: `Wake ${opts.model}` }).click();
      await page.waitForFunction(
        (m) => /Ready/.test(document.querySelector(`#models-table tr[data-model="${m}"]`)?.innerText || ''),
        opts.model,
        { timeout: WAIT },
      );
      out.wokenRow = await row.locator('th, td').allInnerTexts();
      out.wakeButtonSeconds = (Date.now() - wakeClicked) / 1000;
      await row.getByRole('button', { name: `Put ${opts.model} to sleep` }).click();
      await page.waitForFunction(
        (m) => document.querySelector(`#models-table tr[data-model="${m}"]`)?.innerText.includes('Asleep'),
        opts.model,
        { timeout: WAIT },
      );

      await tab(page, 'Speak');
      await page.waitForFunction(() => document.querySelector('#model-state')?.textContent.startsWith('Asleep'), null, {
        timeout: WAIT,
      });
      out.modelState = await text(page, '#model-state');
      await fillSpeak(page, { text: 'Good morning. The model was asleep a moment ago.' });
      const generating = generate(page, { watchStatus: true });
      // the moment the page says it is waking the model
      await page.waitForFunction(() => /Waking model/.test(document.querySelector('#speak-status').textContent), null, {
        timeout: WAIT,
      });
      out.screenshots.push(await shot(page, 'speak-waking-dark'));
      out.wake = await generating;
      if (out.wake.ok) out.wake.download = await downloadAndDecode(page, 'woken.wav');

      await tab(page, 'Status');
      await page.waitForFunction(
        (m) => document.querySelector(`#models-table tr[data-model="${m}"]`)?.innerText.includes('Ready'),
        opts.model,
        { timeout: WAIT },
      );
      out.awakeRow = await row.locator('th, td').allInnerTexts();
    },
  },

  /** Upload a clip, see it listed and validated, use it (the API's error in words), record one with
   *  the (fake) microphone, speak with a speaker voice, delete what was made. */
  voices: {
    launch: {},
    async run(page, out) {
      await open(page);
      await signIn(page, opts.admin_key);
      await tab(page, 'Voices');
      await page.locator('#voices-table tbody tr').first().waitFor({ timeout: WAIT });

      // no consent: the API refuses and the page says why
      const form = page.locator('#voice-form');
      await form.getByLabel('Name', { exact: true }).fill(opts.clone_voice);
      await form.getByLabel('Model', { exact: true }).selectOption(opts.model);
      await page.getByLabel('Upload a file').setInputFiles(opts.clip);
      await page.waitForFunction(() => /s\.$/.test(document.querySelector('#v-clip-info').textContent), null, { timeout: WAIT });
      out.clipInfo = await text(page, '#v-clip-info');
      out.modelHint = await text(page, '#v-model-hint');
      out.previewSrc = await page.locator('#v-preview').getAttribute('src');
      // Transcribe: the namespace's transcription model (woken from zero) fills the field, which the
      // user then corrects
      out.transcriptHint = await text(page, '#v-transcript-hint');
      await page.getByRole('button', { name: 'Transcribe', exact: true }).click();
      await page.waitForFunction(() => /Transcribed by/.test(document.querySelector('#v-transcribe-state').textContent), null, { timeout: WAIT });
      out.transcribed = await page.locator('#v-transcript').inputValue();
      out.transcribeState = await text(page, '#v-transcribe-state');
      await page.getByLabel('Transcript').fill(opts.transcript);
      await page.getByRole('button', { name: 'Create voice' }).click();
      await page.locator('#v-error').waitFor({ timeout: WAIT });
      out.noConsentError = await text(page, '#v-error');

      await page.getByLabel('The speaker consented to having their voice cloned.').check();
      await page.getByRole('button', { name: 'Create voice' }).click();
      await page.waitForFunction(() => /created/.test(document.querySelector('#v-status').textContent), null, { timeout: WAIT });
      out.created = await text(page, '#v-status');
      const cloneRow = page.locator(`#voices-table tr[data-voice="${opts.clone_voice}"]`);
      await cloneRow.waitFor({ timeout: WAIT });
      // the operator validates the clip and reports its duration (the panel refreshes itself)
      await page.waitForFunction(
        (v) => /ready · \d/.test(document.querySelector(`#voices-table tr[data-voice="${v}"]`)?.innerText || ''),
        opts.clone_voice,
        { timeout: WAIT },
      );
      out.cloneRow = await cloneRow.locator('th, td').allInnerTexts();
      out.axe.push(...(await axe(page, 'voices')));
      out.screenshots.push(await shot(page, 'voices-desktop-light'));

      // use it: the Speak panel selects it; Piper cannot clone, and the page shows the API's words
      await cloneRow.getByRole('button', { name: `Use voice ${opts.clone_voice}` }).click();
      out.selectedVoice = await page.locator('#panel-speak').getByLabel('Voice', { exact: true }).inputValue();
      out.voiceHint = await text(page, '#voice-hint');
      await page.locator('#panel-speak').getByLabel('Text', { exact: true }).fill('This should be said in the uploaded voice.');
      out.cloneSpeak = await generate(page);
      out.screenshots.push(await shot(page, 'speak-clone-error-light'));

      // record a clip with the (fake) microphone: converted to WAV in the page, then uploaded
      await tab(page, 'Voices');
      await page.getByRole('button', { name: 'Record' }).click();
      await page.waitForTimeout(2500);
      await page.getByRole('button', { name: 'Stop recording' }).click();
      await page.waitForFunction(() => /^Recording: /.test(document.querySelector('#v-clip-info').textContent), null, {
        timeout: WAIT,
      });
      out.recordedInfo = await text(page, '#v-clip-info');
      out.recordedPreview = await page.locator('#v-preview').evaluate(async (el) => {
        if (el.readyState < 1) await new Promise((resolve) => el.addEventListener('loadedmetadata', resolve, { once: true }));
        return { duration: el.duration, visible: !el.hidden };
      });
      await form.getByLabel('Name', { exact: true }).fill(opts.recorded_voice);
      await page.getByLabel('The speaker consented to having their voice cloned.').check();
      await page.getByRole('button', { name: 'Create voice' }).click();
      await page.waitForFunction(
        (v) => document.querySelector('#v-status').textContent.includes(v),
        opts.recorded_voice,
        { timeout: WAIT },
      );
      out.recordedCreated = await text(page, '#v-status');
      const recordedRow = page.locator(`#voices-table tr[data-voice="${opts.recorded_voice}"]`);
      await recordedRow.waitFor({ timeout: WAIT });
      out.recordedRow = await recordedRow.locator('th, td').allInnerTexts();

      // a voice with a built-in speaker (made with kubectl by the test) speaks
      await tab(page, 'Speak');
      await page.waitForSelector(`#voice option[value="${opts.speaker_voice}"]`, { state: 'attached', timeout: WAIT });
      await fillSpeak(page, { voice: opts.speaker_voice, text: 'A voice made from a built-in speaker speaks quickly.' });
      out.speakerSpeak = await generate(page);
      if (out.speakerSpeak.ok) out.speakerSpeak.download = await downloadAndDecode(page, 'speaker-voice.wav');

      // delete both uploaded voices (the confirmation dialog is accepted)
      await tab(page, 'Voices');
      for (const name of [opts.clone_voice, opts.recorded_voice]) {
        await page.getByRole('button', { name: `Delete voice ${name}` }).click();
        await page.locator(`#voices-table tr[data-voice="${name}"]`).waitFor({ state: 'detached', timeout: WAIT });
      }
      out.remaining = await page.locator('#voices-table tbody th').allInnerTexts();
    },
  },

  /** 中文 labels, dark theme, a phone-sized screen, keyboard-only use. */
  i18n_layout: {
    launch: { viewport: PHONE },
    async run(page, out) {
      out.overflow = {};
      await open(page);
      await signIn(page, opts.key);
      out.english = {
        tabs: await page.getByRole('tab').allInnerTexts(),
        generate: await page.locator('#generate').innerText(),
        textLabel: await page.locator('label[for="text"]').innerText(),
      };
      await page.getByLabel('Interface language').selectOption('zh');
      await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
      const chinese = async () => ({
        tabs: await page.getByRole('tab').allInnerTexts(),
        generate: await page.locator('#generate').innerText(),
        textLabel: await page.locator('label[for="text"]').innerText(),
        counter: await text(page, '#text-count'),
        lang: await page.evaluate(() => document.documentElement.lang),
      });
      out.chinese = await chinese();
      out.screenshots.push(await shot(page, 'speak-phone-light-zh'));
      // the language and the key survive a reload of the tab
      await page.reload();
      await page.waitForSelector('body[data-ready="true"]');
      out.afterReload = await chinese();
      out.keyPanelAfterReload = await page.locator('#key-panel').isVisible();

      // dark theme
      await page.locator('#theme').click();
      out.dark = await page.evaluate(() => ({
        theme: document.documentElement.dataset.theme,
        pressed: document.querySelector('#theme').getAttribute('aria-pressed'),
        background: getComputedStyle(document.body).backgroundColor,
      }));
      for (const name of ['speak', 'voices', 'productions', 'status']) {
        await page.locator(`#tab-${name}`).click();
        if (name === 'status') await page.locator(`#models-table tr[data-model="${opts.model}"]`).waitFor({ timeout: WAIT });
        if (name === 'voices') await page.locator('#voices-table tbody tr').first().waitFor({ timeout: WAIT });
        out.overflow[name] = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        out.axe.push(...(await axe(page, `${name} (phone, dark, zh)`)));
        out.screenshots.push(await shot(page, `${name}-phone-dark-zh`));
      }

      // keyboard only: arrow keys move between tabs; Tab reaches Generate; Enter speaks
      await page.locator('#tab-speak').click();
      await page.locator('#tab-speak').focus();
      await page.keyboard.press('ArrowRight');
      out.arrowRight = await page.evaluate(() => ({
        focused: document.activeElement.id,
        voicesVisible: !document.querySelector('#panel-voices').hidden,
      }));
      await page.keyboard.press('Home');
      out.home = await page.evaluate(() => document.activeElement.id);
      const reached = [];
      for (let i = 0; i < 60; i++) {
        await page.keyboard.press('Tab');
        const id = await page.evaluate(() => document.activeElement.id || document.activeElement.tagName);
        reached.push(id);
        if (id === 'generate') break;
      }
      out.tabOrder = reached;
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => document.querySelector('#speak-status').textContent === '完成。', null, {
        timeout: WAIT,
      });
      out.keyboardSpeak = { status: await text(page, '#speak-status'), length: await text(page, '#m-length') };
      out.screenshots.push(await shot(page, 'speak-phone-dark-zh-done'));
    },
  },

  /** Wrong key, user key on an admin action, text over the limit: each shows the API's message. */
  errors: {
    launch: {},
    async run(page, out) {
      await open(page);
      await enterKey(page, 'sk-this-key-is-wrong');
      await page.locator('#key-error').waitFor({ timeout: WAIT });
      out.badKey = await text(page, '#key-error');
      out.badKeyStored = await page.evaluate(() => sessionStorage.getItem('kubetts.apiKey'));
      out.screenshots.push(await shot(page, 'bad-key-light'));

      await signIn(page, opts.key);
      await tab(page, 'Status');
      const row = page.locator(`#models-table tr[data-model="${opts.model}"]`);
      await row.waitFor({ timeout: WAIT });
      await row.getByRole('button', { name: `Put ${opts.model} to sleep` }).click();
      await page.locator('#status-action-error').waitFor({ timeout: WAIT });
      await page.waitForTimeout(1500); // the panel refreshes itself meanwhile: the message stays
      out.userSleep = await text(page, '#status-action-error');

      await tab(page, 'Speak');
      await fillSpeak(page, { text: 'x'.repeat(opts.max_input_chars + 5) });
      out.overCounter = {
        text: await text(page, '#text-count'),
        over: await page.locator('#text-count').evaluate((el) => el.classList.contains('over')),
      };
      out.tooLong = await generate(page);
      out.screenshots.push(await shot(page, 'speak-error-light'));

      // Stop ends a request that is still streaming
      const long = Array.from({ length: 40 }, (_, i) => `This is sentence number ${i + 1}, which nobody will hear.`);
      await fillSpeak(page, { text: long.join(' ') });
      await page.getByRole('button', { name: 'Generate' }).click();
      await page.waitForFunction(() => /^Playing while it streams/.test(document.querySelector('#speak-status').textContent), null, {
        timeout: WAIT,
      });
      await page.getByRole('button', { name: 'Stop' }).click();
      await page.waitForFunction(() => document.querySelector('#speak-status').textContent === 'Stopped.', null, {
        timeout: WAIT,
      });
      out.stopped = {
        status: await text(page, '#speak-status'),
        generateEnabled: await page.locator('#generate').isEnabled(),
        stopHidden: await page.locator('#stop').isHidden(),
        errorHidden: await page.locator('#speak-error').isHidden(),
      };
    },
  },

  /** OpenAI's voice names in the voice list, and a typed blend for a Kokoro model (ADR 0042). */
  alias_blend: {
    launch: {},
    async run(page, out) {
      await open(page);
      await signIn(page, opts.key);
      const panel = page.locator('#panel-speak');
      await fillSpeak(page, { text: 'An alias speaks with the sample voice.' });
      out.aliasOptions = await panel.locator('#voice optgroup[label="OpenAI voice names"] option').allInnerTexts();
      out.blendHiddenForPiper = await page.locator('#blend-field').isHidden();
      await fillSpeak(page, { voice: 'alloy', text: 'An alias speaks with the sample voice.' });
      out.alias = await generate(page);
      if (out.alias.ok) out.alias.download = await downloadAndDecode(page, 'alias.wav');

      await fillSpeak(page, { model: opts.kokoro, text: opts.blend_text });
      out.blendVisibleForKokoro = await page.locator('#blend-field').isVisible();
      out.blendPlaceholder = await panel.getByLabel('Blend of voices (optional)').getAttribute('placeholder');
      await panel.getByLabel('Blend of voices (optional)').fill(opts.blend);
      out.blend = await generate(page);
      if (out.blend.ok) out.blend.download = await downloadAndDecode(page, 'blend.wav');
      out.axe.push(...(await axe(page, 'speak with a blend')));
      out.screenshots.push(await shot(page, 'speak-blend'));
      await panel.getByLabel('Blend of voices (optional)').fill('jf_alpha(0.5)+jf_nobody(0.5)');
      out.badBlend = await generate(page);
      out.history = await page.locator('#history > li').allInnerTexts();
    },
  },
  productions: {
    launch: {},
    async run(page, out) {
      await open(page, '#productions');
      await signIn(page, opts.admin_key);
      const form = page.locator('#job-form');
      await form.getByLabel('A script (“Role: line” lines)').check();
      await form.getByLabel('Text or script', { exact: true }).fill(opts.script);
      // the roles are read off the script as it is typed, each with its own model and voice
      await page.locator('#j-roles tbody tr[data-role="Bob"]').waitFor({ timeout: WAIT });
      out.roles = await page.locator('#j-roles tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.role));
      await form.getByLabel('Model', { exact: true }).selectOption(opts.model);
      await page.getByLabel('Model of Bob').selectOption(opts.espeak);
      await page.getByLabel('Voice of Bob').selectOption(opts.espeak_voice);
      await form.getByLabel('Format', { exact: true }).selectOption('mp3');
      // a name the API refuses: its reason, in its words
      await form.getByLabel('Name (optional)').fill('Not_A_Name');
      await page.getByRole('button', { name: 'Start production' }).click();
      await page.locator('#j-error').waitFor({ timeout: WAIT });
      out.badNameError = await text(page, '#j-error');
      await form.getByLabel('Name (optional)').fill(opts.job);
      await page.getByRole('button', { name: 'Start production' }).click();
      await page.waitForFunction(() => /^Started /.test(document.querySelector('#j-status').textContent), null, { timeout: WAIT });
      out.created = await text(page, '#j-status');
      const row = page.locator(`#jobs-table tr[data-job="${opts.job}"]`);
      await row.waitFor({ timeout: WAIT });
      // the panel polls: every phase the row shows on the way (a MutationObserver keeps each one)
      await page.evaluate((name) => {
        window.__phases = [];
        const seen = () => {
          const phase = document.querySelector(`#jobs-table tr[data-job="${name}"]`)?.dataset.phase;
          if (phase !== undefined && window.__phases.at(-1) !== phase) window.__phases.push(phase);
        };
        seen();
        new MutationObserver(seen).observe(document.querySelector('#jobs-table tbody'), { childList: true, subtree: true });
      }, opts.job);
      out.axe.push(...(await axe(page, 'productions')));
      await page.waitForFunction((name) => document.querySelector(`#jobs-table tr[data-job="${name}"]`)?.dataset.phase === 'Complete', opts.job, {
        timeout: 5 * WAIT,
      });
      out.phases = await page.evaluate(() => window.__phases);
      out.row = await row.locator('th, td').allInnerTexts();
      await row.getByRole('button', { name: `Chapters of ${opts.job}` }).click();
      const chapter = page.locator('#job-chapters li').first();
      await chapter.waitFor({ timeout: WAIT });
      out.chapterTitle = await chapter.locator('.chapter-title').innerText();
      await chapter.getByRole('button', { name: 'Load' }).click();
      await chapter.getByRole('link', { name: 'Download' }).waitFor({ timeout: WAIT });
      out.player = await page.evaluate(async () => {
        const el = document.querySelector('#job-chapters li audio');
        if (el.readyState < 1) await new Promise((resolve, reject) => {
          el.addEventListener('loadedmetadata', resolve, { once: true });
          el.addEventListener('error', () => reject(new Error(`audio element: ${el.error?.message || el.error?.code}`)), { once: true });
        });
        await el.play();
        await new Promise((resolve) => setTimeout(resolve, 400));
        const advanced = el.currentTime;
        el.pause();
        return { src: el.src, duration: el.duration, advanced };
      });
      const [download] = await Promise.all([page.waitForEvent('download'), chapter.getByRole('link', { name: 'Download' }).click()]);
      const file = path.join(opts.artifacts, 'production.mp3');
      await download.saveAs(file);
      out.download = { file, suggested: download.suggestedFilename() };
      out.axe.push(...(await axe(page, 'production chapters')));
      out.screenshots.push(await shot(page, 'productions-desktop-light'));
      // deleted through the page
      await row.getByRole('button', { name: `Delete ${opts.job}` }).click();
      await row.waitFor({ state: 'detached', timeout: WAIT });
      out.deleted = true;
    },
  },
};

const scenario = scenarios[scenarioName];
if (!scenario) {
  console.error(`unknown scenario ${scenarioName}; known: ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
const { page, watch, close } = await launch(scenario.launch);
const out = { screenshots: [], axe: [] };
let failed = null;
try {
  await scenario.run(page, out);
} catch (err) {
  failed = err;
  out.screenshots.push(await shot(page, `${scenarioName}-failure`).catch(() => 'none'));
}
out.watch = watch;
await close();
if (failed) {
  console.error(failed.stack || String(failed));
  console.error(`observed so far: ${JSON.stringify(out)}`);
  process.exit(1);
}
console.log(JSON.stringify(out));
