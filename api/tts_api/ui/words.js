// Word highlighting while speech plays (ADR 0045): the words of a "timestamps": "word" request,
// shown as spans, the one being spoken marked. The clock is whatever is playing: the streaming
// Web Audio player while the clip arrives, then the <audio> element.

import { clear, h } from './dom.js';

/** The index of the word spoken at `seconds` (the last one started), or -1 before the first. */
export function wordAt(words, seconds) {
  let lo = 0;
  let hi = words.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (words[mid].start <= seconds) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

export class Highlighter {
  constructor(el) {
    this.el = el;
    this.words = [];
    this.spans = [];
    this.current = -1;
    this.clock = null; // () => seconds of the clip now playing, or null when nothing plays
    this.frame = null;
  }

  reset() {
    this.stop();
    this.words = [];
    this.spans = [];
    this.current = -1;
    clear(this.el);
    this.el.hidden = true;
  }

  add(word) {
    const span = h('span', { class: 'word', 'data-start': String(word.start) }, word.word);
    if (this.words.length) this.el.append(' ');
    this.el.append(span);
    this.el.hidden = false;
    this.words.push(word);
    this.spans.push(span);
  }

  /** Replace the words with the final list (speech.audio.done's). */
  set(words) {
    clear(this.el);
    this.words = [];
    this.spans = [];
    this.current = -1;
    for (const w of words) this.add(w);
  }

  follow(clock) {
    this.clock = clock;
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.tick());
  }

  stop() {
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    this.frame = null;
    this.clock = null;
  }

  mark(index) {
    if (index === this.current) return;
    this.spans[this.current]?.classList.remove('spoken');
    this.spans[index]?.classList.add('spoken');
    this.current = index;
  }

  tick() {
    this.frame = null;
    const seconds = this.clock?.();
    if (seconds === null || seconds === undefined) return;
    this.mark(wordAt(this.words, seconds));
    this.frame = requestAnimationFrame(() => this.tick());
  }
}
