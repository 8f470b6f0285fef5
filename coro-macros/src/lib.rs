//! `#[coro::main]` and `#[coro::test]`: run an `async fn` on a fresh
//! `coro::io::IoScheduler`.
//!
//! Use these through the `coro` facade crate (`#[coro::main]`,
//! `#[coro::test]`), not by depending on `coro-macros` directly: the code they
//! generate names `::coro::io::IoSchedulerOptions` and a hidden helper of the
//! facade. If the facade is known under another name in your `Cargo.toml`
//! (`my_coro = { package = "coro", .. }`), say so with `crate = "my_coro"`.
//!
//! Both macros build an `IoScheduler` from their arguments, run the body on
//! it until it finishes, shut the scheduler down (tasks the body spawned and
//! left running are cancelled, after at most 5 s for a dropped stream's
//! last send) and return the body's value. Inside the body
//! `IoScheduler::current()` is that scheduler. A panic in the body is resumed
//! on the calling thread, so `#[should_panic]` works. On the default inline
//! scheduler the calling thread itself drives the scheduler
//! (`ThreadStrategy::Manual`) and runs the body there, so the body need not
//! be `Send` (an `Rc`, a `RefCell` may live across `.await`); with
//! `threads = N` the body is spawned onto the pool and must be `Send`, its output too (`Box<dyn Error + Send + Sync>`, not `Box<dyn Error>`). If the scheduler cannot be created (say
//! `driver = "uring"` where seccomp or `kernel.io_uring_disabled` forbids
//! io_uring), the function panics with the cause. So it does when the body
//! never finishes because something called `shutdown()` on its scheduler
//! first (a task stopping the program on a signal): the shutdown cancels
//! the body too. Stop by ending the body instead, say by racing the work
//! against the signal (`coro::when_any!`), and let the macro shut down.
//!
//! | argument | meaning | default |
//! |---|---|---|
//! | `driver = "epoll"` / `"uring"` / `"auto"` | `IoSchedulerOptions::driver` (`"io_uring"` is accepted for `"uring"`) | `"auto"`: io_uring if the kernel allows it; `CORO_DRIVER` overrides |
//! | `threads = N` | run tasks on a thread pool of `N` workers (`ExecutionStrategy::ThreadPool`) | inline |
//! | `inline` | run tasks on the event-loop thread (`ExecutionStrategy::Inline`) | yes |
//! | `entries = N` | io_uring submission-queue entries (`UringOptions::entries`) | 1024 |
//! | `crate = "path"` | where the `coro` facade is | `::coro` |
//! | `both_drivers` (test only) | one test per driver, see below | |
//! | `start_paused` (test only) | virtual clock, moved by `IoScheduler::advance` | real clock |
//!
//! `#[coro::test(both_drivers)] async fn name()` expands into a module `name`
//! holding two tests, `name::epoll` and `name::uring` (the driver names of
//! `coro_io::driver_tests!`), so `cargo test uring` runs the io_uring half.
//! Such a function may take one argument, which receives the
//! `coro::io::DriverKind` of the test it runs in.
//!
//! Misuse is a compile error pointing at the mistake: a function that is not
//! `async`, arguments or generics on `main`, an unknown or repeated argument,
//! a driver name that does not exist, `threads = 0` or above 4096, `threads` together with
//! `inline`, `entries` with `driver = "epoll"`, `both_drivers` together with
//! `driver`, or a `#[test]` next to `#[coro::test]`.
//!
//! # Examples
//!
//! ```
//! use coro::io::IoScheduler;
//! use std::time::Duration;
//!
//! #[coro::main(threads = 2)]
//! async fn main() -> std::io::Result<()> {
//!     let sched = IoScheduler::current().expect("main runs on a scheduler");
//!     sched.sleep(Duration::from_millis(1)).await;
//!     Ok(())
//! }
//! ```
//!
//! ```
//! // In a test file: the tests `runs_on_each_driver::epoll` and `::uring`.
//! #[coro::test(both_drivers)]
//! async fn runs_on_each_driver(kind: coro::io::DriverKind) {
//!     let sched = coro::io::IoScheduler::current().unwrap();
//!     assert_eq!(sched.driver_kind(), kind);
//! }
//! # fn main() {}
//! ```
#![doc(test(attr(deny(warnings))))]
#![deny(rustdoc::broken_intra_doc_links)]
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{ToTokens, TokenStreamExt, quote, quote_spanned};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{AttrStyle, Attribute, FnArg, ItemFn, LitInt, LitStr, ReturnType};

/// Run `async fn main` on a `coro::io::IoScheduler` built from the arguments.
///
/// Arguments (all optional): `driver = "epoll" | "uring" | "auto"`,
/// `threads = N` or `inline`, `entries = N` (io_uring), `crate = "path"`.
/// The function takes no arguments and may return anything `main` may (for
/// example `std::io::Result<()>`). See the [crate documentation](crate).
///
///
/// # Examples
///
/// ```
/// #[coro::main(driver = "epoll")]
/// async fn main() {
///     let sched = coro::io::IoScheduler::current().unwrap();
///     assert_eq!(sched.driver_kind(), coro::io::DriverKind::Epoll);
/// }
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Flavor::Main, args.into(), item.into()).into()
}

/// Run an `async fn` test on a `coro::io::IoScheduler` built from the arguments.
///
/// The arguments of [`macro@main`], plus `both_drivers` (one test per
/// driver, in a module named after the function: `name::epoll` and
/// `name::uring`; the function may then take one `DriverKind` argument) and
/// `start_paused` (a virtual clock). Other attributes (`#[ignore]`,
/// `#[should_panic]`, ...) go on the generated tests. See the
/// [crate documentation](crate).
///
///
/// # Examples
///
/// ```
/// #[coro::test(threads = 2, driver = "auto")]
/// async fn sleeps() {
///     let sched = coro::io::IoScheduler::current().unwrap();
///     sched.sleep(std::time::Duration::from_millis(1)).await;
/// }
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Flavor::Test, args.into(), item.into()).into()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Main,
    Test,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::Main => "#[coro::main]",
            Flavor::Test => "#[coro::test]",
        }
    }

    fn keys(self) -> &'static str {
        match self {
            Flavor::Main => "driver, threads, inline, entries, crate",
            Flavor::Test => "driver, threads, inline, entries, crate, both_drivers, start_paused",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Driver {
    Auto,
    Epoll,
    IoUring,
}

impl Driver {
    fn variant(self) -> proc_macro2::Ident {
        let name = match self {
            Driver::Auto => "Auto",
            Driver::Epoll => "Epoll",
            Driver::IoUring => "IoUring",
        };
        proc_macro2::Ident::new(name, Span::call_site())
    }
}

/// The parsed attribute arguments; each keeps the span of its key for errors.
#[derive(Default)]
struct Args {
    driver: Option<(Driver, Span)>,
    threads: Option<(usize, Span)>,
    inline: Option<Span>,
    entries: Option<(u32, Span)>,
    krate: Option<(syn::Path, Span)>,
    both_drivers: Option<Span>,
    start_paused: Option<Span>,
}

/// Collects every error instead of stopping at the first.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }
}

fn expand(flavor: Flavor, args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let mut errors = Errors::default();
    let parsed = parse_args(flavor, args, &mut errors);
    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            errors.at(e.span(), format!("{} goes on an `async fn`", flavor.name()));
            let err = errors.0.map(|e| e.to_compile_error());
            return quote! { #err #item };
        }
    };
    check_fn(flavor, &parsed, &func, &mut errors);
    match errors.0 {
        None => generate(flavor, &parsed, func),
        Some(e) => {
            // Keep the name defined (so `main` exists and callers resolve)
            // without the body, whose own errors would only add noise.
            let err = e.to_compile_error();
            let ItemFn { vis, sig, .. } = &func;
            let ident = &sig.ident;
            quote! { #err #[allow(dead_code)] #vis fn #ident() {} }
        }
    }
}

fn parse_args(flavor: Flavor, args: TokenStream2, errors: &mut Errors) -> Args {
    let mut out = Args::default();
    let parser = syn::meta::parser(|meta| {
        let span = meta.path.span();
        let Some(key) = meta.path.get_ident().map(ToString::to_string) else {
            return Err(meta.error(format!(
                "unknown {} argument; expected one of: {}",
                flavor.name(),
                flavor.keys()
            )));
        };
        match key.as_str() {
            "driver" => {
                let lit = string_value(&meta, "driver = \"epoll\"")?;
                let driver = match lit.value().as_str() {
                    "auto" => Driver::Auto,
                    "epoll" => Driver::Epoll,
                    "uring" | "io_uring" | "iouring" => Driver::IoUring,
                    other => {
                        return Err(syn::Error::new(
                            lit.span(),
                            format!(
                                "unknown driver {other:?}; expected \"epoll\", \"uring\" or \"auto\""
                            ),
                        ));
                    }
                };
                set_once(&mut out.driver, (driver, span), &key, span)
            }
            "threads" => {
                let lit = int_value(&meta, "threads = 4")?;
                let n: usize = lit.base10_parse()?;
                if n == 0 {
                    return Err(syn::Error::new(
                        lit.span(),
                        "`threads` must be at least 1 (leave it out, or write `inline`, to run tasks on the event-loop thread)",
                    ));
                }
                // The thread pool's own limit: above it the program would
                // build and then panic at start-up.
                if n > 4096 {
                    return Err(syn::Error::new(
                        lit.span(),
                        "`threads` must be at most 4096 (the thread pool's limit)",
                    ));
                }
                set_once(&mut out.threads, (n, span), &key, span)
            }
            "entries" => {
                let lit = int_value(&meta, "entries = 256")?;
                let n: u32 = lit.base10_parse()?;
                if n == 0 {
                    return Err(syn::Error::new(lit.span(), "`entries` must be at least 1"));
                }
                set_once(&mut out.entries, (n, span), &key, span)
            }
            "crate" => {
                let lit = string_value(&meta, "crate = \"coro\"")?;
                let path: syn::Path = lit.parse()?;
                set_once(&mut out.krate, (path, span), &key, span)
            }
            "inline" => flag(&meta, &mut out.inline, &key),
            "both_drivers" | "start_paused" if flavor == Flavor::Main => Err(meta.error(format!(
                "`{key}` is an argument of #[coro::test], not of #[coro::main]"
            ))),
            "both_drivers" => flag(&meta, &mut out.both_drivers, &key),
            "start_paused" => flag(&meta, &mut out.start_paused, &key),
            _ => Err(meta.error(format!(
                "unknown {} argument `{key}`; expected one of: {}",
                flavor.name(),
                flavor.keys()
            ))),
        }
    });
    if let Err(e) = parser.parse2(args) {
        errors.push(e);
    }

    if let (Some(_), Some(inline)) = (out.threads, out.inline) {
        errors.at(
            inline,
            "`inline` and `threads` both choose where tasks run; keep one",
        );
    }
    if let (Some(_), Some((_, driver))) = (out.both_drivers, out.driver) {
        errors.at(
            driver,
            "`both_drivers` already runs the test on epoll and on io_uring; remove `driver = ..` (or `both_drivers`)",
        );
    }
    if let (Some((Driver::Epoll, _)), Some((_, entries))) = (out.driver, out.entries) {
        errors.at(
            entries,
            "`entries` sizes the io_uring queues; it has no effect with `driver = \"epoll\"`",
        );
    }
    out
}

fn set_once<T>(slot: &mut Option<T>, value: T, key: &str, span: Span) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(span, format!("duplicate `{key}` argument")));
    }
    *slot = Some(value);
    Ok(())
}

fn flag(meta: &ParseNestedMeta<'_>, slot: &mut Option<Span>, key: &str) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        return Err(meta.error(format!("`{key}` takes no value: write `{key}` alone")));
    }
    let span = meta.path.span();
    set_once(slot, span, key, span)
}

fn string_value(meta: &ParseNestedMeta<'_>, example: &str) -> syn::Result<LitStr> {
    let value = meta.value()?;
    let expr: syn::Expr = value.parse()?;
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Ok(s),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected a string, as in `{example}`"),
        )),
    }
}

fn int_value(meta: &ParseNestedMeta<'_>, example: &str) -> syn::Result<LitInt> {
    let value = meta.value()?;
    let expr: syn::Expr = value.parse()?;
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => Ok(i),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected an integer, as in `{example}`"),
        )),
    }
}

fn check_fn(flavor: Flavor, args: &Args, func: &ItemFn, errors: &mut Errors) {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span,
            format!("{} needs an `async fn`", flavor.name()),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            format!("{} functions cannot be generic", flavor.name()),
        ));
    }
    let max_inputs = usize::from(args.both_drivers.is_some());
    if sig.inputs.len() > max_inputs {
        let extra = sig.inputs.iter().skip(max_inputs);
        let tokens: TokenStream2 = extra.map(ToTokens::into_token_stream).collect();
        let msg = match (flavor, max_inputs) {
            (Flavor::Main, _) => "`async fn main` takes no arguments".to_owned(),
            (Flavor::Test, 0) => "a #[coro::test] function takes no arguments (with `both_drivers` it may take one, the `DriverKind`)".to_owned(),
            (Flavor::Test, _) => "a #[coro::test(both_drivers)] function takes at most one argument, the `DriverKind`".to_owned(),
        };
        errors.push(syn::Error::new_spanned(tokens, msg));
    }
    if let Some(FnArg::Receiver(r)) = sig.inputs.first() {
        errors.push(syn::Error::new_spanned(
            r,
            format!("{} cannot be used on a method", flavor.name()),
        ));
    }
    if flavor == Flavor::Test {
        for attr in &func.attrs {
            if attr.path().is_ident("test") {
                errors.push(syn::Error::new_spanned(
                    attr,
                    "#[coro::test] already makes this a test; remove this #[test]",
                ));
            }
        }
    }
}

/// The `IoSchedulerOptions` expression for one driver.
fn options(krate: &syn::Path, args: &Args, driver: Driver) -> TokenStream2 {
    let variant = driver.variant();
    let execution = match args.threads {
        Some((n, _)) => quote! {
            #krate::io::ExecutionStrategy::ThreadPool(#krate::io::ThreadPoolOptions {
                thread_count: #n,
                ..::core::default::Default::default()
            })
        },
        None => quote! { #krate::io::ExecutionStrategy::Inline },
    };
    let uring = args.entries.map(|(n, _)| {
        quote! {
            uring: #krate::io::UringOptions {
                entries: #n,
                ..::core::default::Default::default()
            },
        }
    });
    let paused = args.start_paused.map(|_| quote! { start_paused: true, });
    quote! {
        #krate::io::IoSchedulerOptions {
            driver: #krate::io::DriverKind::#variant,
            execution: #execution,
            #uring
            #paused
            ..::core::default::Default::default()
        }
    }
}

/// Lint, `cfg` and doc attributes also apply to the body when it is split
/// from the tests; the rest (`ignore`, `should_panic`, ...) only to tests.
fn applies_to_body(attr: &Attribute) -> bool {
    ["allow", "warn", "deny", "expect", "forbid", "cfg", "doc"]
        .iter()
        .any(|name| attr.path().is_ident(name))
}

/// What also applies to the module of split tests: `cfg`, docs and lint
/// levels. Not `expect`: met in the body, it would go unmet on the module
/// and the tests (a warning each).
fn applies_to_module(attr: &Attribute) -> bool {
    ["allow", "warn", "deny", "forbid", "cfg", "doc"]
        .iter()
        .any(|name| attr.path().is_ident(name))
}

fn generate(flavor: Flavor, args: &Args, func: ItemFn) -> TokenStream2 {
    let krate = args
        .krate
        .as_ref()
        .map(|(p, _)| p.clone())
        .unwrap_or_else(|| syn::parse_quote!(::coro));
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
        ..
    } = func;
    // The body's own `#![...]` attributes come in `attrs` too: they stay
    // inside the body (in front of the function they are an error).
    let (inner, attrs): (Vec<Attribute>, Vec<Attribute>) = attrs
        .into_iter()
        .partition(|a| matches!(a.style, AttrStyle::Inner(_)));
    // Rebuilt in the user's braces: errors that point at them (a borrow
    // that ends at the closing brace) keep pointing there.
    let mut body = TokenStream2::new();
    block.brace_token.surround(&mut body, |t| {
        t.append_all(&inner);
        t.append_all(&block.stmts);
    });
    let block = body;
    let ident = &sig.ident;
    let output = &sig.output;
    // Errors about the body's future (not `Send`, ...) point at the signature.
    let sig_span = sig.span();
    // On an inline scheduler the calling thread drives it and runs the
    // body, which then need not be `Send`; on a pool it is spawned.
    let run = if args.threads.is_some() {
        quote! { #krate::__macro_support::block_on }
    } else {
        quote! { #krate::__macro_support::block_on_local }
    };
    let test_attr = (flavor == Flavor::Test).then(|| quote! { #[::core::prelude::v1::test] });

    if args.both_drivers.is_none() {
        let driver = args.driver.map_or(Driver::Auto, |(d, _)| d);
        let opts = options(&krate, args, driver);
        let ret = match output {
            ReturnType::Default => quote! { () },
            ReturnType::Type(_, ty) => ty.to_token_stream(),
        };
        let body_call = quote_spanned! {sig_span=> __coro_body() };
        // The body becomes an inner `async fn` with the same return type, so
        // `?` and `return` mean what they meant in the user's function.
        return quote! {
            #test_attr
            #(#attrs)*
            #vis fn #ident() #output {
                async fn __coro_body() -> #ret #block
                #run(#opts, #body_call)
            }
        };
    }

    // both_drivers: the body stays where it was written (a function of the
    // value namespace), and a module of the same name (type namespace) holds
    // one test per driver.
    let body_attrs: Vec<&Attribute> = attrs.iter().filter(|a| applies_to_body(a)).collect();
    let module_attrs: Vec<&Attribute> = attrs.iter().filter(|a| applies_to_module(a)).collect();
    // (rustc expands `cfg_attr` before it calls an attribute macro: an
    // `expect` behind one arrives here as a plain `expect`.)
    let test_attrs: Vec<&Attribute> = attrs
        .iter()
        .filter(|a| !a.path().is_ident("expect"))
        .collect();
    let inputs = &sig.inputs;
    let tests = [(Driver::Epoll, "epoll"), (Driver::IoUring, "uring")].map(|(driver, name)| {
        let test_name = proc_macro2::Ident::new(name, Span::call_site());
        let opts = options(&krate, args, driver);
        let variant = driver.variant();
        let arg = (!inputs.is_empty()).then(|| quote! { #krate::io::DriverKind::#variant });
        let body_call = quote_spanned! {sig_span=> super::#ident(#arg) };
        quote! {
            #test_attr
            #(#test_attrs)*
            fn #test_name() #output {
                #run(#opts, #body_call)
            }
        }
    });
    quote! {
        #(#body_attrs)*
        #[cfg(test)]
        #vis #sig #block

        #(#module_attrs)*
        #[cfg(test)]
        mod #ident {
            // The return type is written as in the parent module.
            #[allow(unused_imports)]
            use super::*;
            #(#tests)*
        }
    }
}
