export * from './hash32';
export * from './hash-ring';
