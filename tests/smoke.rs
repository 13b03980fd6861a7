use k8s_openapi::api::core::v1::ConfigMap;
use k8s_store::MemoryStore;
use std::sync::Arc;

fn cm(ns: &str, name: &str) -> Arc<ConfigMap> {
    let mut c = ConfigMap::default();
    c.metadata.namespace = Some(ns.into());
    c.metadata.name = Some(name.into());
    Arc::new(c)
}

#[test]
fn smoke() {
    let s = MemoryStore::<ConfigMap>::new(2).unwrap();
    for i in 0..2000 {
        let ns = format!("ns{}", i % 7);
        let n = format!("n{i}");
        s.add(cm(&ns, &n), &[ns.as_str(), n.as_str()]).unwrap();
    }
    s.validate().unwrap();
    assert_eq!(s.len(), 2000);
    assert_eq!(
        s.get(&["ns3"]).unwrap().len(),
        2000 / 7 + if 2000 % 7 > 3 { 1 } else { 0 }
    );
    // move
    s.add(cm("ns0", "n0"), &["other", "x"]).unwrap();
    s.validate().unwrap();
    assert_eq!(s.get(&["ns0", "n0"]).unwrap().len(), 0);
    assert_eq!(s.get(&["other"]).unwrap().len(), 1);
    for i in (0..2000).step_by(2) {
        assert!(
            s.remove(&cm(&format!("ns{}", i % 7), &format!("n{i}")))
                .unwrap()
        );
    }
    s.validate().unwrap();
    assert_eq!(s.len(), 1000);
    s.clear();
    s.validate().unwrap();
    assert!(s.is_empty());
}
