// Incremental detokenization for streamed generation: emits only text that is final (no
// trailing incomplete UTF-8 sequence, no prefix of a stop string that may still complete),
// and reports when a stop string appeared (the text before it is emitted, the stop string not).

export class TextStream {
  private text = '';
  private emitted = 0;
  private readonly hold: number;
  stopped = false;

  /** `decodeAll` turns the ids so far into text (called with the whole list each time). */
  constructor(private decodeAll: (ids: number[]) => Promise<string> | string, private stops: string[] = []) {
    this.hold = Math.max(0, ...stops.map((s) => s.length - 1));
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** Update with all ids so far; returns the newly final text ('' if none). Sets `stopped`. */
  async update(ids: number[]): Promise<string> {
    if (this.stopped) return '';
    this.text = await this.decodeAll(ids);
    let cut = -1;
    for (const s of this.stops) {
      const i = this.text.indexOf(s, Math.max(0, this.emitted - s.length + 1));
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stopped = true;
      return this.take(Math.max(cut, this.emitted));
    }
    let end = this.text.length;
    // A trailing replacement character may be an incomplete UTF-8 sequence: wait for more bytes.
    while (end > this.emitted && this.text[end - 1] === '\uFFFD') end--;
    return this.take(Math.max(this.emitted, end - this.hold));
  }

  /** Everything not emitted yet (at the end of generation). */
  flush(): string {
    return this.stopped ? '' : this.take(this.text.length);
  }

  private take(end: number): string {
    const out = this.text.slice(this.emitted, end);
    this.emitted = Math.max(this.emitted, end);
    return out;
  }
}
