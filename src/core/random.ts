import { randomBytes, randomUUID } from 'node:crypto';

/** Randomness, injected so that identifiers and serial numbers are reproducible in tests. */
export interface Random {
  bytes(length: number): Uint8Array;
  uuid(): string;
}

export const systemRandom: Random = {
  bytes: (length) => new Uint8Array(randomBytes(length)),
  uuid: () => randomUUID(),
};
