//! The reference driver: the core engine behind the driver protocol (`PROTOCOL.md`), over the
//! testkit's in-memory storage, a manual clock and a seeded generator. The runner's `core`
//! target talks to it line by line in process; `twofold-conformance --driver` serves it on
//! standard input and output, the way every other host's driver runs. Several drivers can share
//! one storage, as several server processes share one database.

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use twofold_core::api;
use twofold_core::{Context, Engine, Error};
use twofold_proto::{EngineError, Entry, Environment, HostError, Storage, Versioned, Write as Put};
use twofold_testkit::{ManualClock, MemoryStorage, SeededRng};

use crate::ops::{self, AdvanceClock, Empty, Kind, RESET_CLOCK_MS, Seed, Seeded, SetClock, TestOp};

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

/// In-memory storage that several drivers can share; `reset` from any of them empties it for
/// all.
#[derive(Clone, Default)]
pub struct SharedStorage(Arc<Mutex<Arc<MemoryStorage>>>);

impl SharedStorage {
    fn current(&self) -> Arc<MemoryStorage> {
        let slot = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(&slot)
    }

    fn clear(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(MemoryStorage::new());
    }
}

/// What the engine calls back: the shared storage, and this driver's own clock and randomness.
struct DriverHost {
    storage: SharedStorage,
    clock: ManualClock,
    rng: SeededRng,
}

impl Storage for DriverHost {
    fn get(&self, key: &str) -> Result<Option<Versioned>, HostError> {
        self.storage.current().get(key)
    }
    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<Entry>, HostError> {
        self.storage.current().scan(prefix, after, limit)
    }
    fn commit(&self, writes: &[Put]) -> Result<(), HostError> {
        self.storage.current().commit(writes)
    }
}

impl Environment for DriverHost {
    fn now_ms(&self) -> Result<u64, HostError> {
        Ok(self.clock.now_ms())
    }
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError> {
        self.rng.fill(buf);
        Ok(())
    }
}

/// The core engine on an in-memory host, answering protocol lines.
pub struct Driver {
    host: DriverHost,
    engine: Engine,
    randomness: Randomness,
}

impl Driver {
    /// A driver with storage of its own, in the state `reset` leaves.
    pub fn new(randomness: Randomness) -> Result<Driver, EngineError> {
        Driver::sharing(randomness, SharedStorage::default())
    }

    /// A driver over `storage`, which other drivers may share. Storage is kept as it is.
    pub fn sharing(randomness: Randomness, storage: SharedStorage) -> Result<Driver, EngineError> {
        let seed = match randomness {
            Randomness::Seeded => 0,
            Randomness::Unseeded(seed) => seed,
        };
        let clock = ManualClock::default();
        clock.set_ms(RESET_CLOCK_MS);
        Ok(Driver {
            host: DriverHost {
                storage,
                clock,
                rng: SeededRng::new(seed),
            },
            engine: default_engine().map_err(EngineError::from)?,
            randomness,
        })
    }

    /// Answers one request line (without its newline) with one response line (without one).
    pub fn handle_line(&mut self, line: &[u8]) -> String {
        let (id, outcome) = self.handle(line);
        let id = id.to_string();
        match outcome {
            Ok(result) => format!("{{\"id\":{id},\"ok\":{result}}}"),
            Err(error) => {
                let error = serde_json::to_string(&EngineError::from(error)).unwrap_or_else(|_| {
                    r#"{"code":"internal","message":"the error could not be written"}"#.into()
                });
                format!("{{\"id\":{id},\"error\":{error}}}")
            }
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
        let outcome = context.and_then(|ctx| match ops::classify(op) {
            Some(Kind::Engine(op)) => api::call(
                &self.engine,
                &self.host,
                &ctx,
                op,
                args.to_string().as_bytes(),
            ),
            Some(Kind::Test(op)) => self.test_op(op, &args),
            None => Err(invalid(&format!("unknown op {op:?}"))),
        });
        (id, outcome)
    }

    fn test_op(&mut self, op: TestOp, args: &Value) -> Result<String, Error> {
        match op {
            TestOp::Reset => {
                let Empty {} = test_args(args)?;
                self.host.storage.clear();
                self.host.clock.set_ms(RESET_CLOCK_MS);
                if self.randomness == Randomness::Seeded {
                    self.host.rng = SeededRng::new(0);
                }
                // Like a CSPRNG, an unseeded stream goes on: nothing repeats after a reset.
                self.engine = default_engine()?;
                answer(&Empty {})
            }
            TestOp::Configure => {
                let config = api::config_from_json(args.to_string().as_bytes())?;
                self.engine = Engine::new(config)?;
                answer(&Empty {})
            }
            TestOp::SetClock => {
                let SetClock { now_ms } = test_args(args)?;
                self.host.clock.set_ms(now_ms);
                answer(&Empty {})
            }
            TestOp::AdvanceClock => {
                let AdvanceClock { ms } = test_args(args)?;
                let now = self.host.clock.now_ms().saturating_add(ms);
                self.host.clock.set_ms(now);
                answer(&Empty {})
            }
            TestOp::Seed => {
                let Seed { seed } = test_args(args)?;
                let seeded = self.randomness == Randomness::Seeded;
                if seeded {
                    self.host.rng = SeededRng::new(seed);
                }
                answer(&Seeded { seeded })
            }
        }
    }
}

fn default_engine() -> Result<Engine, Error> {
    Engine::new(ops::default_config())
}

fn invalid(message: &str) -> Error {
    Error::InvalidInput(message.to_owned())
}

fn test_args<T: DeserializeOwned>(args: &Value) -> Result<T, Error> {
    serde_json::from_value(args.clone()).map_err(|e| invalid(&format!("arguments: {e}")))
}

fn answer<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))
}
