// TEMPORARY stand-in for ./Node.js (being written by the lead); delete when Node.ts exists.
import { Effect } from "effect"
import type { NodeConfig } from "../domain/Config.js"
import { type ConfigError, TransportError } from "../domain/Errors.js"

export const runNode = (config: NodeConfig): Effect.Effect<void, ConfigError | TransportError> =>
  Effect.gen(function*() {
    yield* Effect.logDebug("stub runNode")
    yield* Effect.sync(() => process.stdout.write(JSON.stringify(config) + "\n"))
    if (process.env.STUB_FAIL) {
      return yield* Effect.fail(new TransportError({ message: `cannot listen on 0.0.0.0:${config.port}: address already in use` }))
    }
    if (process.env.STUB_WAIT) {
      yield* Effect.addFinalizer(() => Effect.log("scope closed"))
      yield* Effect.never
    }
  }).pipe(Effect.scoped)
