/** Session state: one file and one control socket per running `kf forward`, and the tools to list and stop them. */

export { checkStateDir, ensureStateDir, resolveStateDir } from "./state_dir.ts";
export {
  identityMatches,
  isAlive,
  type Liveness,
  processArgv,
  type ProcessIdentity,
  processStartTime,
} from "./process_identity.ts";
export {
  isSessionId,
  newSessionId,
  parseSessionRecord,
  type ReadResult,
  readSessionRecords,
  recordPath,
  type RecordProblem,
  removeSessionRecord,
  type SessionRecord,
  socketPath,
  writeSessionRecord,
} from "./session_file.ts";
export { SessionRecorder, type SessionRecorderOptions } from "./session_recorder.ts";
export {
  type ControlHandlers,
  type ControlRequest,
  type ControlResponse,
  type ControlServer,
  sendControl,
  serveControl,
  type ServeControlOptions,
} from "./control.ts";
export {
  listSessions,
  type ListSessionsOptions,
  type SessionView,
  type StopAction,
  type StopOutcome,
  stopSessions,
  type StopSessionsOptions,
} from "./sessions.ts";
export { AmbiguousTargetError, ControlError, SessionNotFoundError, StateDirError } from "./errors.ts";
