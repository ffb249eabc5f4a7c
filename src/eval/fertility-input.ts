// Input fertility of the tokenizer that encodes the text, with the tokenizer library's definition
// (src/tokenizer/fertility.ts: the research's FertilityInput, mean over lines of tokens/words).
import type { TextCodec } from './engine-api.ts';
import { FertilityAccumulator, fertilityLines, type FertilityResult } from '../tokenizer/fertility.ts';

export async function fertilityInput(codec: TextCodec, text: string): Promise<FertilityResult> {
  const acc = new FertilityAccumulator();
  const lines = fertilityLines(text);
  for (let i = 0; i < lines.length; i += 512) {
    const chunk = lines.slice(i, i + 512);
    const ids = await codec.encodeBatch(chunk);
    chunk.forEach((l, j) => acc.add(l, ids[j].length));
  }
  return acc.result();
}
