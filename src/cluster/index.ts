export { superviseWorkers, notifyListening, WORKER_LISTENING, type SupervisorOptions } from './supervisor';
export { answerMetricsRequests, clusterMetricsEndpoint, prepareWorkerMetrics } from './metrics';
