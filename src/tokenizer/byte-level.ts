// GPT-2's byte-to-unicode table used by byte-level BPE tokenizers (GPT-2, SmolLM2, Qwen,
// Llama-3): every byte maps to a printable character, so any UTF-8 text is representable.

function buildTable(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const table = new Array<string>(256);
  for (let i = 0; i < bs.length; i++) table[bs[i]] = String.fromCharCode(cs[i]);
  return table;
}

/** byte value -> its visible character */
export const BYTE_TO_CHAR: readonly string[] = buildTable();
/** visible character -> byte value */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

/** UTF-8 text -> its byte-level string (one visible char per byte). */
export function toByteLevel(text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  let s = '';
  for (const b of bytes) s += BYTE_TO_CHAR[b];
  return s;
}

/** Byte-level string -> the bytes it stands for (null if it has a char outside the table). */
export function fromByteLevel(s: string): Uint8Array | null {
  const out = new Uint8Array(s.length);
  let i = 0;
  for (const ch of s) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b === undefined) return null;
    out[i++] = b;
  }
  return out.subarray(0, i);
}
