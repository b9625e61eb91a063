export { DomainError, problemType } from './errors';
export { systemClock, ManualClock, type Clock } from './clock';
export { systemRandom, type Random } from './random';
export { parseDuration } from './duration';
export { canonicalJson } from './canonical-json';
export { isDnsName } from './dns';
export { sha256 } from './hash';
export { isUuid } from './uuid';
