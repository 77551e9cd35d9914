//! Space files and architecture files.

use crate::{rng_of, scratch_file};
use nas_core::nn::Module;
use nas_core::space::builtin::{self, nb201, InputSpec};
use nas_core::space::file::{FileSpace, MAX_BYTES};
use nas_core::space::{describe, fixed, Space, Supernet};
use nas_core::Tensor;
use nas_types::arch::{self, validate};
use nas_types::{Choice, Rng};
use std::sync::OnceLock;

/// The data shapes (`[channels, height, width]`, classes) a space file is loaded for; the
/// input's first byte picks one.
pub const SHAPES: &[([usize; 3], usize)] = &[
    ([1, 8, 8], 3),
    ([3, 8, 8], 2),
    ([1, 4, 4], 10),
    ([2, 5, 7], 4),
];

/// Images per batch that a space file is loaded and run for.
pub const BATCH: usize = 2;

/// The largest network (in bytes, as the file's check counts them) that the target
/// builds and runs: enough for every op at these sizes, small enough for milliseconds.
pub const RUN_BYTES: u64 = 16 << 20;

/// Runs `net` on a random batch of `input` images and checks that it gives `classes`
/// finite scores per image.
fn run(net: &dyn Module, input: [usize; 3], classes: usize, rng: &mut Rng, what: &str) {
    let x = Tensor::randn(&[BATCH, input[0], input[1], input[2]], 1.0, rng);
    let y = net.forward(&x);
    assert_eq!(y.shape(), &[BATCH, classes], "{what}: output shape");
    let data = y.data();
    if let Some(v) = data.iter().find(|v| !v.is_finite()) {
        panic!("{what}: output {v} is not finite");
    }
}

pub(crate) fn space_file(bytes: &[u8]) {
    let Some((&pick, text)) = bytes.split_first() else {
        return;
    };
    let (input, classes) = SHAPES[pick as usize % SHAPES.len()];
    let path = scratch_file("space.json", text);
    let Ok(space) = FileSpace::load_for_batch(&path, input, classes, BATCH) else {
        return;
    };
    assert!(
        space.bytes <= MAX_BYTES,
        "a file needing {} bytes loaded",
        space.bytes
    );
    let choices = describe(&space);
    for (i, c) in choices.iter().enumerate() {
        assert!(c.size() > 0, "choice `{}` has no decision", c.label);
        assert!(
            choices[..i].iter().all(|d| d.label != c.label),
            "two choices are labelled `{}`",
            c.label
        );
    }
    let mut rng = rng_of(bytes);
    let a = arch::random(&choices, &mut rng);
    if let Err(e) = validate(&choices, &a) {
        panic!("a random architecture of the space is invalid: {e}");
    }
    if space.bytes > RUN_BYTES {
        return;
    }
    let seed = rng.next_u64();
    let net = fixed(&space, &a, seed).unwrap_or_else(|e| panic!("fixed network: {e}"));
    run(net.as_ref(), input, classes, &mut rng, "fixed network");
    let fused = pick & 0x80 != 0;
    if let Ok(sn) = Supernet::build(&space, fused, seed) {
        assert_eq!(
            sn.choices, choices,
            "the supernet's choices are the described ones"
        );
        run(sn.net.as_ref(), input, classes, &mut rng, "supernet");
    }
}

/// The data shape the architecture target builds built-in spaces for.
const ARCH_INPUT: InputSpec = InputSpec {
    channels: 1,
    height: 8,
    width: 8,
    classes: 3,
};

/// Each built-in space's name and choices at [`ARCH_INPUT`] (described once).
fn builtin_choices() -> &'static [(&'static str, Vec<Choice>)] {
    static CHOICES: OnceLock<Vec<(&'static str, Vec<Choice>)>> = OnceLock::new();
    CHOICES.get_or_init(|| {
        builtin::NAMES
            .iter()
            .map(|&name| {
                let space = builtin::by_name(name, ARCH_INPUT)
                    .unwrap_or_else(|e| panic!("space `{name}`: {e}"));
                (name, describe(space.as_ref()))
            })
            .collect()
    })
}

pub(crate) fn arch(bytes: &[u8]) {
    let path = scratch_file("arch.json", bytes);
    let Ok(a) = arch::load(&path) else {
        return;
    };
    // What is saved loads back the same.
    let again = scratch_file("arch-saved.json", b"");
    arch::save(&again, &a).expect("saving an architecture");
    assert_eq!(arch::load(&again).expect("loading a saved architecture"), a);
    let mut rng = rng_of(bytes);
    for (name, choices) in builtin_choices() {
        if validate(choices, &a).is_err() {
            continue;
        }
        // Only the cheap spaces are built: a small NB201 (the labels do not depend on
        // its size) and the seed network.
        let space: Box<dyn Space> = match *name {
            "nb201" => {
                let key = nb201::arch_key(&a).expect("a valid NB201 architecture has a key");
                let back = nb201::arch_from_key(&key).expect("a key turns back");
                assert_eq!(nb201::arch_key(&back).unwrap(), key);
                assert!(validate(choices, &back).is_ok());
                nb201::isomorphism_key(&a).expect("a valid NB201 architecture has a class");
                builtin::nb201(4, 1, ARCH_INPUT)
            }
            "seed-net" => builtin::by_name(name, ARCH_INPUT).unwrap(),
            _ => continue,
        };
        let net = fixed(space.as_ref(), &a, rng.next_u64())
            .unwrap_or_else(|e| panic!("{name}: a valid architecture does not build: {e}"));
        let input = [ARCH_INPUT.channels, ARCH_INPUT.height, ARCH_INPUT.width];
        run(net.as_ref(), input, ARCH_INPUT.classes, &mut rng, name);
    }
}
