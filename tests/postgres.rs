//! meltanolabs-tap-postgres from the package registry against a real
//! PostgreSQL started here: rows inserted between runs arrive exactly once.

mod common;

use common::{Machine, Postgres, plugin_project};

#[test]
fn incremental_replication_from_postgres() {
    let pg = Postgres::start();
    pg.sql("CREATE TABLE orders (id integer PRIMARY KEY, amount integer NOT NULL, note text)");
    pg.sql("INSERT INTO orders VALUES (1, 10, 'a'), (2, 20, 'b'), (3, 30, 'c')");
    let config = format!(
        "default:\n  project_name: pg\n  taps:\n    tap-postgres:\n      pip_url: meltanolabs-tap-postgres==0.10.0\n      capabilities: [catalog, state, discover, about]\n      select: [\"public-orders.*\"]\n      metadata:\n        public-orders:\n          replication-method: INCREMENTAL\n          replication-key: id\n      config:\n        host: 127.0.0.1\n        port: {}\n        user: postgres\n        password: unused\n        database: postgres\n  targets:\n    target-fixture:\n      pip_url: ./plugins/target-fixture\n      config:\n        destination: out\n",
        pg.port
    );
    let p = plugin_project(&config);
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["tap-postgres:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    let read = || -> Vec<i64> {
        std::fs::read_to_string(p.path().join("out/public-orders.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(read(), vec![1, 2, 3]);
    pg.sql("INSERT INTO orders VALUES (4, 40, 'd'), (5, 50, 'e')");
    let (code, _, err) = p.run_on(&m, &["tap-postgres:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    let ids = read();
    // The new rows arrive exactly once (the SDK re-reads the bookmark row itself: `>=`).
    for id in [4, 5] {
        assert_eq!(ids.iter().filter(|i| **i == id).count(), 1, "{ids:?}");
    }
    assert!(ids.len() <= 6, "{ids:?}");
    let state = p.json_on(&m, &["state", "show", "tap-postgres:target-fixture"]);
    assert!(state.to_string().contains("public-orders"), "{state}");
}
