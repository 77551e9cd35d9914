//! The unit tests of `nas_cli::data_args` (`nas-cli/src/data_args.rs`).

use nas_cli::data_args::*;
use std::path::PathBuf;

#[test]
fn class_lists_parse_and_name_what_is_wrong() {
    assert_eq!("3,7".parse::<ClassList>().unwrap().0, vec![3, 7]);
    assert_eq!(" 2 , 0 ".parse::<ClassList>().unwrap().0, vec![2, 0]);
    assert_eq!("3,7".parse::<ClassList>().unwrap().to_string(), "3,7");
    let e = "".parse::<ClassList>().unwrap_err();
    assert!(e.contains("empty"), "{e}");
    let e = "1,x".parse::<ClassList>().unwrap_err();
    assert!(e.contains("'x'"), "{e}");
    let e = "1,,2".parse::<ClassList>().unwrap_err();
    assert!(e.contains("''"), "{e}");
    let e = "1,2,1".parse::<ClassList>().unwrap_err();
    assert!(e.contains("class 1") && e.contains("twice"), "{e}");
    let e = "-1".parse::<ClassList>().unwrap_err();
    assert!(e.contains("'-1'"), "{e}");
}

#[test]
fn options_that_do_not_go_together_are_refused() {
    let p = |s: &str| Some(PathBuf::from(s));
    let files = DataArgs {
        train_images: p("a"),
        train_labels: p("b"),
        test_split: Some(0.2),
        ..DataArgs::default()
    };
    assert!(files.check().is_ok());
    let cases = [
        (
            DataArgs {
                train_labels: None,
                ..files.clone()
            },
            "without --train-labels",
        ),
        (
            DataArgs {
                data: p("d"),
                ..files.clone()
            },
            "both name the data",
        ),
        (
            DataArgs {
                test_split: None,
                ..files.clone()
            },
            "need --test-split",
        ),
        (
            DataArgs {
                test_images: p("c"),
                test_labels: p("e"),
                ..files.clone()
            },
            "give one: leave one",
        ),
        (
            DataArgs {
                data: p("d"),
                test_split: Some(0.2),
                ..DataArgs::default()
            },
            "has its own test split",
        ),
        (
            DataArgs {
                split_seed: Some(3),
                ..DataArgs::default()
            },
            "which is not given",
        ),
    ];
    for (a, want) in cases {
        let e = a.check().unwrap_err().to_string();
        assert!(e.contains(want), "{a:?}: {e}");
    }
}

#[test]
fn retrain_options_fall_back_to_the_runs() {
    let p = |s: &str| Some(PathBuf::from(s));
    let run = DataArgs {
        train_images: p("/a"),
        train_labels: p("/b"),
        test_split: Some(0.2),
        split_seed: Some(5),
        classes: Some(ClassList(vec![3, 7])),
        ..DataArgs::default()
    };
    assert_eq!(DataArgs::default().over(&run), run);
    let given = DataArgs {
        data: p("/d"),
        ..DataArgs::default()
    };
    let m = given.over(&run);
    assert_eq!(m.data, p("/d"));
    assert_eq!((m.train_images, m.test_split), (None, None));
    assert_eq!(m.classes, run.classes);
    let given = DataArgs {
        classes: Some(ClassList(vec![1])),
        ..DataArgs::default()
    };
    let m = given.over(&run);
    assert_eq!(m.classes, Some(ClassList(vec![1])));
    assert_eq!(m.train_images, run.train_images);
    assert_eq!(
        run.argv().join(" "),
        "--train-images /a --train-labels /b --test-split 0.2 --split-seed 5 --classes 3,7"
    );
}

/// One damaged label of 255 among labels 0..9 made a 256-class problem without a word
/// (the classes are the largest label plus one); a set whose labels are all 1 made 2
/// classes with no image of class 0. Both are named now; a full set is not.
#[test]
fn labels_that_leave_classes_empty_are_named() {
    let set = |labels: Vec<u32>| nas_core::data::Dataset {
        images: vec![0.0; labels.len()],
        n: labels.len(),
        c: 1,
        h: 1,
        w: 1,
        classes: *labels.iter().max().unwrap() as usize + 1,
        labels,
    };
    let mut damaged: Vec<u32> = (0..100).map(|i| i % 10).collect();
    damaged[57] = 255;
    let w = missing_classes(&set(damaged), "l100bad").unwrap();
    assert!(
        w.contains("l100bad: classes 10 to 254 have no training images")
            && w.contains("the largest label, 255 (image 57), makes 256 classes"),
        "{w}"
    );
    let w = missing_classes(&set(vec![1; 20]), "ones").unwrap();
    assert!(w.contains("ones: class 0 has no training images"), "{w}");
    assert_eq!(
        missing_classes(&set((0..50).map(|i| i % 10).collect()), "full"),
        None
    );
}

/// A set of a fixed class count (CIFAR-10's 10) whose file lacks a class says so, not
/// that its largest label makes the count.
#[test]
fn a_fixed_class_count_with_a_class_missing_says_so() {
    let labels: Vec<u32> = (0..40).map(|i| i % 9).collect();
    let d = nas_core::data::Dataset {
        images: vec![0.0; 40],
        n: 40,
        c: 1,
        h: 1,
        w: 1,
        classes: 10,
        labels,
    };
    let w = missing_classes(&d, "sample").unwrap();
    assert!(
        w.contains("sample: class 9 has no training images: the data set has 10 classes"),
        "{w}"
    );
}
