//! The reference driver: the core engine behind the driver protocol (`PROTOCOL.md`), over the
//! testkit's in-memory host. The runner's `core` target talks to it line by line in process;
//! `twofold-conformance --driver` serves it on standard input and output, the way every other
//! host's driver runs.

use std::io::{BufRead, Write};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use twofold_core::api::{self, Op};
use twofold_core::{Config, Context, Engine, Error};
use twofold_testkit::{SeededRng, TestHost};

/// Where `reset` sets the clock: 2026-01-01T00:00:00Z.
pub const RESET_CLOCK_MS: u64 = 1_767_225_600_000;

/// How the driver's randomness behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Randomness {
    /// `reset` reseeds with 0 and `seed` is honoured, as PROTOCOL.md asks where a host can.
    Seeded,
    /// Randomness from this seed that `reset` and `seed` never change, and `seed` answers
    /// `{"seeded": false}`: how a host behaves that keeps its CSPRNG. The runner uses it to
    /// check that transcripts do not depend on random values.
    Unseeded(u64),
}

/// The core engine on an in-memory host, answering protocol lines.
pub struct Driver {
    host: TestHost,
    engine: Engine,
    randomness: Randomness,
}

impl Driver {
    /// A driver in the state `reset` leaves.
    pub fn new(randomness: Randomness) -> Driver {
        Driver {
            host: fresh_host(randomness),
            engine: default_engine(),
            randomness,
        }
    }

    /// Answers one request line (without its newline) with one response line (without one).
    pub fn handle_line(&mut self, line: &[u8]) -> String {
        let (id, outcome) = self.handle(line);
        let id = id.to_string();
        match outcome {
            Ok(result) => format!("{{\"id\":{id},\"ok\":{result}}}"),
            Err(error) => format!("{{\"id\":{id},\"error\":{}}}", api::error_json(&error)),
        }
    }

    /// Serves the protocol on `input` and `output` until `input` ends.
    pub fn serve(&mut self, input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
        for line in input.split(b'\n') {
            let mut line = line?;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                continue;
            }
            let answer = self.handle_line(&line);
            output.write_all(answer.as_bytes())?;
            output.write_all(b"\n")?;
            output.flush()?;
        }
        Ok(())
    }

    /// The response id (the request's numeric `id`, else null) and the answer: the result
    /// object as JSON text, or an error.
    fn handle(&mut self, line: &[u8]) -> (Value, Result<String, Error>) {
        let request = std::str::from_utf8(line)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        let Some(Value::Object(request)) = request else {
            return (
                Value::Null,
                Err(invalid("a request is one JSON object on one line")),
            );
        };
        let id = match request.get("id") {
            Some(Value::Number(n)) => Value::Number(n.clone()),
            _ => return (Value::Null, Err(invalid("a request needs a numeric id"))),
        };
        let Some(Value::String(op)) = request.get("op") else {
            return (id, Err(invalid("a request needs a string op")));
        };
        let args = match request.get("args") {
            None => Value::Object(Map::new()),
            Some(args @ Value::Object(_)) => args.clone(),
            Some(_) => return (id, Err(invalid("args must be a JSON object"))),
        };
        let context = match request.get("context") {
            None | Some(Value::Null) => Ok(Context::default()),
            Some(value) => api::context_from_json(value.to_string().as_bytes()),
        };
        let outcome = context.and_then(|ctx| self.dispatch(op, &args, &ctx));
        (id, outcome)
    }

    fn dispatch(&mut self, op: &str, args: &Value, ctx: &Context) -> Result<String, Error> {
        let args_json = args.to_string();
        match op {
            "reset" => {
                let NoArgs {} = test_args(args)?;
                let mut host = fresh_host(self.randomness);
                if let Randomness::Unseeded(_) = self.randomness {
                    // Like a CSPRNG, the stream goes on: nothing repeats after a reset.
                    std::mem::swap(&mut host.rng, &mut self.host.rng);
                }
                self.host = host;
                self.engine = default_engine();
                Ok("{}".into())
            }
            "configure" => {
                let config = api::config_from_json(args_json.as_bytes())?;
                self.engine = Engine::new(config)?;
                Ok("{}".into())
            }
            "set_clock" => {
                let SetClock { now_ms } = test_args(args)?;
                self.host.clock.set_ms(now_ms);
                Ok("{}".into())
            }
            "advance_clock" => {
                let AdvanceClock { ms } = test_args(args)?;
                let now = self.host.clock.now_ms().saturating_add(ms);
                self.host.clock.set_ms(now);
                Ok("{}".into())
            }
            "seed" => {
                let Seed { seed } = test_args(args)?;
                match self.randomness {
                    Randomness::Seeded => {
                        self.host.rng = SeededRng::new(seed);
                        Ok(r#"{"seeded":true}"#.into())
                    }
                    Randomness::Unseeded(_) => Ok(r#"{"seeded":false}"#.into()),
                }
            }
            name => match Op::parse(name) {
                Some(op) => api::call(&self.engine, &self.host, ctx, op, args_json.as_bytes()),
                None => Err(invalid(&format!("unknown op {name:?}"))),
            },
        }
    }
}

fn fresh_host(randomness: Randomness) -> TestHost {
    let mut host = TestHost::new(0);
    if let Randomness::Unseeded(seed) = randomness {
        host.rng = SeededRng::new(seed);
    }
    host.clock.set_ms(RESET_CLOCK_MS);
    host
}

fn default_engine() -> Engine {
    // The SPEC defaults always validate; a failure here is a bug in the core's defaults.
    Engine::new(Config::default()).unwrap_or_else(|e| panic!("the default configuration: {e}"))
}

fn invalid(message: &str) -> Error {
    Error::InvalidInput(message.to_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetClock {
    now_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceClock {
    ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    seed: u64,
}

fn test_args<T: DeserializeOwned>(args: &Value) -> Result<T, Error> {
    serde_json::from_value(args.clone()).map_err(|e| invalid(&format!("arguments: {e}")))
}
