//! Tests that run without loom: the models are compiled out unless the crate is built
//! with `--cfg k8s_store_loom`, and the harness they share is checked here, so a model
//! that passes is known to be checking something.

use k8s_store_loom_tests::{
    History, Model, Observer, Op, Outcome, Read, Tag, fits, keys, serial_outcomes,
};

fn a() -> Tag {
    Tag::new("ns", "a", "ua", "1")
}

fn b() -> Tag {
    Tag::new("other", "a", "ub", "1")
}

fn add_a_then_b() -> History {
    History::new(
        vec![],
        vec![
            Op::Add(a(), keys("ns", "a")),
            Op::Add(b(), keys("other", "a")),
        ],
    )
}

#[test]
fn models_are_compiled_out_without_the_loom_cfg() {
    // With the cfg this test still runs (the harness needs no store), and says so.
    eprintln!(
        "k8s_store_loom is {}: the loom models {}",
        if cfg!(k8s_store_loom) {
            "set"
        } else {
            "not set"
        },
        if cfg!(k8s_store_loom) {
            "run"
        } else {
            "are compiled out"
        },
    );
}

#[cfg(not(k8s_store_loom))]
#[test]
fn memory_store_matches_the_reference_model() {
    // Without loom the store's locks are the real ones and it works on any thread.
    let store = k8s_store_loom_tests::new_store();
    let h = History::new(
        vec![Op::Add(a(), keys("ns", "a"))],
        vec![
            Op::Add(b(), keys("ns", "a")),
            Op::Add(a().with_rv("2"), keys("other", "b")),
            Op::Remove(b()),
            Op::Delete(keys("other", "b")),
            Op::Replace(vec![(a(), keys("x", "a")), (b(), keys("x", "a"))]),
        ],
    );
    h.set_up(&store);
    for i in 0..h.len() {
        h.run(i, &store);
        h.state(i + 1)
            .assert_matches(&store, &[keys("ns", "a"), keys("other", "b")]);
        store.validate().expect("validate");
    }
    assert_eq!(store.len(), 2);
}

#[test]
fn observer_accepts_reads_that_only_go_forward() {
    let h = add_a_then_b();
    let mut r = Observer::new(&h, "reader");
    r.check_list(&[]);
    r.check_get(&keys("ns", "a"), &[a()]);
    assert_eq!(r.at(), 1);
    r.check_get(&keys("other", "a"), &[]); // still state 1: allowed
    r.check_list(&[a(), b()]);
    r.check_len(2);
    assert_eq!(r.at(), 2);
}

#[test]
#[should_panic(expected = "not linearizable")]
fn observer_rejects_b_without_a() {
    let h = add_a_then_b();
    Observer::new(&h, "reader").check_list(&[b()]);
}

#[test]
#[should_panic(expected = "not linearizable")]
fn observer_rejects_a_read_going_back() {
    let h = add_a_then_b();
    let mut r = Observer::new(&h, "reader");
    r.check_get(&keys("other", "a"), &[b()]);
    r.check_get(&keys("ns", "a"), &[]);
}

#[test]
#[should_panic(expected = "not linearizable")]
fn observer_rejects_missing_a_returned_write() {
    let h = add_a_then_b();
    let mut r = Observer::new(&h, "reader");
    r.at_least(1);
    r.check_len(0);
}

#[test]
#[should_panic(expected = "not linearizable")]
fn observer_rejects_an_object_in_both_places_of_a_move() {
    let x = Tag::new("ns", "a", "ux", "1");
    let h = History::new(
        vec![Op::Add(x.clone(), keys("ns", "a"))],
        vec![Op::Add(x.with_rv("2"), keys("other", "a"))],
    );
    let mut r = Observer::new(&h, "reader");
    r.check_get(&keys("other", "a"), &[x.with_rv("2")]);
    r.check_get(&["ns".to_owned()], &[x]);
}

#[test]
#[should_panic(expected = "not linearizable")]
fn observer_rejects_an_object_in_neither_place_of_a_move() {
    let x = Tag::new("ns", "a", "ux", "1");
    let h = History::new(
        vec![Op::Add(x.clone(), keys("ns", "a"))],
        vec![Op::Add(x.with_rv("2"), keys("other", "a"))],
    );
    let mut r = Observer::new(&h, "reader");
    r.check_get(&keys("ns", "a"), &[]);
    r.check_get(&keys("other", "a"), &[]);
}

#[test]
fn reference_model_follows_the_index_contract() {
    let mut m = Model::default();
    let x = Tag::new("ns", "x", "", "1"); // no uid: identity is namespace and name
    assert_eq!(m.apply(&Op::Add(x.clone(), keys("k", "1"))), Outcome::Done);
    assert_eq!(m.apply(&Op::Add(a(), keys("k", "1"))), Outcome::Done);
    assert_eq!(m.get(&keys("k", "1")), vec![a(), x.clone()]);
    assert_eq!(
        m.apply(&Op::Add(x.with_rv("2"), keys("k", "2"))),
        Outcome::Done
    );
    assert_eq!(m.get(&["k".to_owned()]), vec![a(), x.with_rv("2")]);
    assert_eq!(m.apply(&Op::Delete(keys("k", "1"))), Outcome::Deleted(1));
    assert_eq!(m.apply(&Op::Remove(x)), Outcome::Removed(true));
    assert_eq!(m.apply(&Op::Remove(a())), Outcome::Removed(false));
    assert!(m.is_empty());
}

#[test]
fn serial_outcomes_cover_every_interleaving() {
    let x = a();
    let all = serial_outcomes(
        &Model::default(),
        &[Op::Add(x.clone(), keys("ns", "a")), Op::Remove(x.clone())],
        &[Op::Delete(keys("ns", "a"))],
    );
    assert_eq!(all.len(), 3); // C(3, 1)
    assert!(all.iter().all(|s| s.states.len() == 4));
    let counts: Vec<Outcome> = all.iter().map(|s| s.b[0]).collect();
    assert!(counts.contains(&Outcome::Deleted(0)));
    assert!(counts.contains(&Outcome::Deleted(1)));
}

#[test]
fn fits_needs_one_order_for_all_reads() {
    let h = add_a_then_b();
    let states = [h.state(0).clone(), h.state(1).clone(), h.state(2).clone()];
    let b_only = Read::Get(keys("other", "a"), vec![b()]);
    let no_a = Read::Get(keys("ns", "a"), vec![]);
    assert!(fits(&[no_a.clone(), b_only.clone()], &states));
    assert!(!fits(&[b_only, no_a], &states));
}
