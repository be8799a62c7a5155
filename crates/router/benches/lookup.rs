//! Route lookup and table building at 1 to 10,000 routes: a lookup should
//! cost the same whatever the number of routes, and building a table
//! should grow linearly. `cargo bench -p serverless-router`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serverless_router::{Lookup, MethodFilter, RouteTable};

/// `count` routes: `/hello`, then `/rN/x` literals, with a parameter and
/// a wildcard route among them as configurations have.
fn table(count: usize) -> RouteTable<usize> {
    let get = MethodFilter::from_names(["GET"]).expect("a method");
    let mut table = RouteTable::new();
    let mut add = |pattern: String, value| {
        table
            .insert(pattern.parse().expect("a pattern"), get, value)
            .expect("no conflict");
    };
    add("/hello".to_owned(), 0);
    for index in 1..count {
        let pattern = match index {
            1 => "/users/:id".to_owned(),
            2 => "/static/*".to_owned(),
            _ => format!("/r{index}/x"),
        };
        add(pattern, index);
    }
    table
}

fn lookups(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup");
    for count in [1, 100, 1000, 10_000] {
        let routes = table(count);
        group.bench_with_input(
            BenchmarkId::new("one route", count),
            &routes,
            |b, routes| {
                b.iter(|| matches!(routes.lookup("GET", black_box("/hello")), Lookup::Found(_)))
            },
        );
        group.bench_with_input(
            BenchmarkId::new("not found", count),
            &routes,
            |b, routes| {
                b.iter(|| {
                    matches!(
                        routes.lookup("GET", black_box("/nothing/here")),
                        Lookup::NotFound
                    )
                })
            },
        );
        if count < 100 {
            continue;
        }
        let last = format!("/r{}/x", count - 1);
        group.bench_with_input(
            BenchmarkId::new("last route", count),
            &routes,
            |b, routes| {
                b.iter(|| matches!(routes.lookup("GET", black_box(&last)), Lookup::Found(_)))
            },
        );
    }
    group.finish();
}

fn building(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    for count in [1000, 10_000] {
        group.bench_with_input(BenchmarkId::from_parameter(count), &count, |b, &count| {
            b.iter(|| table(count).len())
        });
    }
    group.finish();
}

criterion_group!(benches, lookups, building);
criterion_main!(benches);
