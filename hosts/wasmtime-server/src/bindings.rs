//! Host bindings for the WIT world `twofold:engine/twofold`, generated from `wit/`.

wasmtime::component::bindgen!({
    world: "twofold",
    path: "../../wit",
    additional_derives: [PartialEq, Eq],
});
