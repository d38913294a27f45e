//! Running one encoder on two inputs of different sizes with shared weights (DINO's
//! local crops): the encoder is built a second time under an alias prefix, then every
//! reference to an aliased initializer is pointed at the original and the copies are
//! dropped. Works for any layer the models build, as long as the shapes agree.

use std::collections::HashMap;

use crate::models::net::Net;
use crate::models::ModelError;

/// Points `alias.*` parameters and buffers at `original.*` and removes the copies.
/// Buffers of the alias (batch-norm running statistics) are dropped with their
/// updates: the original's updates stand.
pub fn share_weights(net: &mut Net, alias: &str, original: &str) -> Result<(), ModelError> {
    let alias_prefix = format!("{alias}.");
    let graph = net.b.graph_mut();
    let dims: HashMap<String, Vec<i64>> =
        graph.initializer.iter().map(|t| (t.name.clone().unwrap_or_default(), t.dims.clone())).collect();
    let mut renames: HashMap<String, String> = HashMap::new();
    for name in dims.keys().filter(|n| n.starts_with(&alias_prefix)) {
        let target = format!("{original}.{}", &name[alias_prefix.len()..]);
        match dims.get(&target) {
            Some(d) if *d == dims[name] => {
                renames.insert(name.clone(), target);
            }
            Some(d) => {
                return Err(ModelError::Config(format!(
                    "cannot share `{target}` {d:?} with `{name}` {:?}: the encoder's weights depend on the input size \
                     (a ViT's position embeddings); use local crops of the global size for this encoder",
                    dims[name]
                )));
            }
            None => return Err(ModelError::Config(format!("`{name}` has no counterpart `{target}` to share"))),
        }
    }
    graph.initializer.retain(|t| !renames.contains_key(t.name.as_deref().unwrap_or("")));
    for node in &mut graph.node {
        for input in &mut node.input {
            if let Some(to) = renames.get(input.as_str()) {
                *input = to.clone();
            }
        }
    }
    net.forget(&alias_prefix);
    Ok(())
}
