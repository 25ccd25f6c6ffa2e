// The bodies the peer channel carries are the failsafe rules' own (node-agent/failsafe/messages.ts).
export { PromiseAnswer, PromiseRequest } from '../failsafe/messages.js';
