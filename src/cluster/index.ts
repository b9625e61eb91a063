export { superviseWorkers, workerLogger, notifyListening, WORKER_LISTENING, type SupervisorOptions } from './supervisor';
