export * from './api';
export * from './auth';
export * from './realtime';
export * from './poll';
