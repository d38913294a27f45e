//! One ONNX Runtime session for one [`StateGraph`], run against a [`StateStore`] through IO
//! binding: state inputs are bound to the store's current values and next-state outputs to
//! its spare buffers (both on the session's device), so a run moves no state through the
//! host. Only the reports asked for (the loss, say) are copied back.

use std::collections::BTreeMap;

use memeguard_onnx::{Tensor, encode_model};
use memeguard_package::onnxruntime::{SessionOptions, session_from_bytes};
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};

use super::RuntimeError;
use super::host::{download, to_ort};
use super::store::StateStore;
use crate::optim::StateGraph;

/// A session running one state graph.
pub struct StateSession {
    session: Session,
    binding: IoBinding,
    graph: StateGraph,
    host_memory: MemoryInfo<'static>,
}

impl StateSession {
    /// Creates the session for `graph` (the model is kept only by ONNX Runtime).
    pub fn new(mut graph: StateGraph, options: &SessionOptions) -> Result<Self, RuntimeError> {
        let bytes = encode_model(&graph.model);
        graph.model = Default::default();
        let session = session_from_bytes(&bytes, options)?;
        let binding = session.create_binding()?;
        let host_memory = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::Default)?;
        Ok(StateSession { session, binding, graph, host_memory })
    }

    /// The graph's description (its model bytes are dropped after loading).
    pub fn graph(&self) -> &StateGraph {
        &self.graph
    }

    /// The ONNX Runtime session (for allocators bound to its device).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Runs once: state from `store`, `feeds` (scalars and data, host tensors) by name;
    /// returns host copies of the outputs named in `fetch`. On success every state value
    /// with a next value is advanced; on failure the store is unchanged.
    pub fn run(
        &mut self,
        store: &mut StateStore,
        feeds: Vec<(String, Tensor)>,
        fetch: &[String],
    ) -> Result<BTreeMap<String, Tensor>, RuntimeError> {
        self.binding.clear();
        for io in &self.graph.state {
            self.binding.bind_input(io.name.as_str(), store.current(&io.name)?)?;
        }
        for io in &self.graph.state {
            if let Some(next) = &io.next {
                self.binding.bind_output(next.as_str(), store.spare(&io.name)?)?;
            }
        }
        for (name, tensor) in feeds {
            let value = to_ort(&tensor)?;
            self.binding.bind_input(name, &value)?;
        }
        for name in fetch {
            self.binding.bind_output_to_device(name.as_str(), &self.host_memory)?;
        }
        let mut reports = BTreeMap::new();
        {
            let outputs = self.session.run_binding(&self.binding)?;
            for name in fetch {
                let value = outputs
                    .get(name.as_str())
                    .ok_or_else(|| RuntimeError::Invalid(format!("output `{name}` was not produced")))?;
                let tensor = value.view().downcast::<ort::value::DynTensorValueType>()?;
                reports.insert(name.clone(), download(&tensor)?);
            }
        }
        for io in &self.graph.state {
            if io.next.is_some() {
                store.swap(&io.name)?;
            }
        }
        Ok(reports)
    }
}
