export { noMetrics, type DomainMetrics, type GroupCommitQueue, type Outcome, type RevocationHandle, type SignalEventLabel, type TokenBindingKind } from './metrics';
export { PrometheusMetrics, SECOND_BUCKETS, type ScrapeSources } from './prometheus';
