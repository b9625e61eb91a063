export { superviseWorkers, notifyListening, WORKER_LISTENING, type SupervisorOptions } from './supervisor';
