//! bAbI-style question answering (after Weston et al. 2015), generated here because the real
//! bAbI cannot be downloaded on these machines: a small world of people, places and objects,
//! stories told word by word from its simulation, and one question at the end of each story.
//!
//! Four task types, numbered as in bAbI:
//! - 1, single supporting fact: "mary went to the kitchen . … where is mary ?" → `kitchen`;
//! - 2, two supporting facts: "john picked up the apple . john went to the garden . … where is
//!   the apple ?" → `garden`;
//! - 6, yes/no questions: "… is mary in the office ?" → `yes` / `no`;
//! - 7, counting: "… how many objects is daniel carrying ?" → `none`, `one`, `two`, `three`.
//!
//! Encoding: one word per step, as a one-hot vector over [`VOCAB`]; after the question mark one
//! more step with the answer marker `-`, at which the model must output the answer word (a
//! categorical output over the vocabulary). Stories of a batch are left-padded with empty steps.

use crate::rng::Rng;

/// People of the world.
pub const PEOPLE: [&str; 4] = ["mary", "john", "daniel", "sandra"];
/// Places.
pub const PLACES: [&str; 6] = ["bathroom", "hallway", "kitchen", "garden", "office", "bedroom"];
/// Objects.
pub const OBJECTS: [&str; 3] = ["apple", "football", "milk"];
const MOVES: [&str; 4] = ["went", "moved", "journeyed", "travelled"];
const TAKES: [&str; 3] = ["picked", "got", "grabbed"];
const DROPS: [&str; 3] = ["dropped", "discarded", "left"];
const NUMBERS: [&str; 4] = ["none", "one", "two", "three"];

/// The whole vocabulary; a word's index is its one-hot position.
pub const VOCAB: [&str; 40] = [
    "mary",
    "john",
    "daniel",
    "sandra",
    "bathroom",
    "hallway",
    "kitchen",
    "garden",
    "office",
    "bedroom",
    "apple",
    "football",
    "milk",
    "went",
    "moved",
    "journeyed",
    "travelled",
    "picked",
    "got",
    "grabbed",
    "dropped",
    "discarded",
    "left",
    "to",
    "the",
    "up",
    ".",
    "where",
    "is",
    "?",
    "in",
    "how",
    "many",
    "objects",
    "carrying",
    "yes",
    "no",
    "none",
    "one",
    "-",
];

/// The index of `word` in [`VOCAB`].
pub fn word_id(word: &str) -> usize {
    VOCAB.iter().position(|w| *w == word).unwrap_or_else(|| panic!("`{word}` is not in the vocabulary"))
}

/// `two` and `three` share ids with no other word: they follow the vocabulary proper.
fn number_id(n: usize) -> usize {
    match n {
        0 => word_id("none"),
        1 => word_id("one"),
        2 => VOCAB.len(),
        _ => VOCAB.len() + 1,
    }
}

/// Vocabulary size including the answers `two` and `three`.
pub const VOCAB_SIZE: usize = VOCAB.len() + 2;

/// The word of id `i` (including `two` and `three`).
pub fn word(i: usize) -> &'static str {
    match i {
        i if i < VOCAB.len() => VOCAB[i],
        i if i == VOCAB.len() => NUMBERS[2],
        _ => NUMBERS[3],
    }
}

/// One story: its words (ids) and the answer's id.
#[derive(Debug, Clone, PartialEq)]
pub struct Story {
    /// bAbI task number (1, 2, 6 or 7).
    pub task: u8,
    /// Word ids, ending with `?` and the answer marker `-`.
    pub words: Vec<usize>,
    /// The answer's id.
    pub answer: usize,
}

impl Story {
    /// The story as text, with its answer.
    pub fn text(&self) -> String {
        let words: Vec<&str> = self.words.iter().map(|&i| word(i)).collect();
        format!("{} {}", words.join(" "), word(self.answer))
    }
}

/// The world a story is told from.
struct World {
    at: [usize; 4],                // place of each person
    holder: [Option<usize>; 3],    // who holds each object
    object_at: [Option<usize>; 3], // place of each object lying around
    words: Vec<usize>,
}

impl World {
    fn new() -> Self {
        Self { at: [usize::MAX; 4], holder: [None; 3], object_at: [None; 3], words: vec![] }
    }
    fn say(&mut self, sentence: &[&str]) {
        self.words.extend(sentence.iter().map(|w| word_id(w)));
        self.words.push(word_id("."));
    }
    fn move_someone(&mut self, rng: &mut Rng) {
        let p = rng.below(PEOPLE.len());
        let mut place = rng.below(PLACES.len());
        if place == self.at[p] {
            place = (place + 1 + rng.below(PLACES.len() - 1)) % PLACES.len();
        }
        self.at[p] = place;
        self.say(&[PEOPLE[p], MOVES[rng.below(MOVES.len())], "to", "the", PLACES[place]]);
    }
    /// Someone who has been placed picks up a free object or drops one they hold.
    fn handle_object(&mut self, rng: &mut Rng) -> bool {
        let placed: Vec<usize> = (0..PEOPLE.len()).filter(|&p| self.at[p] != usize::MAX).collect();
        if placed.is_empty() {
            return false;
        }
        let p = placed[rng.below(placed.len())];
        let held: Vec<usize> = (0..OBJECTS.len()).filter(|&o| self.holder[o] == Some(p)).collect();
        let free: Vec<usize> = (0..OBJECTS.len()).filter(|&o| self.holder[o].is_none()).collect();
        if !held.is_empty() && (free.is_empty() || rng.below(3) == 0) {
            let o = held[rng.below(held.len())];
            self.holder[o] = None;
            self.object_at[o] = Some(self.at[p]);
            self.say(&[PEOPLE[p], DROPS[rng.below(DROPS.len())], "the", OBJECTS[o]]);
        } else if !free.is_empty() {
            let o = free[rng.below(free.len())];
            self.holder[o] = Some(p);
            self.object_at[o] = None;
            self.say(&[PEOPLE[p], TAKES[rng.below(TAKES.len())], "up", "the", OBJECTS[o]]);
        } else {
            return false;
        }
        true
    }
    fn object_place(&self, o: usize) -> Option<usize> {
        match self.holder[o] {
            Some(p) => Some(self.at[p]),
            None => self.object_at[o],
        }
    }
}

/// Tells one story of bAbI task `task` (1, 2, 6 or 7) with `facts` statements before the question.
///
/// Task 2 needs at least two statements (someone must be somewhere before touching an
/// object); shorter requests are lengthened to two.
pub fn story(task: u8, facts: usize, rng: &mut Rng) -> Story {
    let facts = if task == 2 { facts.max(2) } else { facts.max(1) };
    loop {
        let mut w = World::new();
        for _ in 0..facts {
            let object_step = matches!(task, 2 | 7) && rng.below(2) == 0;
            if !(object_step && w.handle_object(rng)) {
                w.move_someone(rng);
            }
        }
        let q = |words: &[&str]| -> Vec<usize> {
            words.iter().map(|x| word_id(x)).chain([word_id("?"), word_id("-")]).collect()
        };
        let placed: Vec<usize> = (0..PEOPLE.len()).filter(|&p| w.at[p] != usize::MAX).collect();
        let (question, answer) = match task {
            1 => {
                let p = placed[rng.below(placed.len())];
                (q(&["where", "is", PEOPLE[p]]), word_id(PLACES[w.at[p]]))
            }
            2 => {
                let known: Vec<usize> = (0..OBJECTS.len()).filter(|&o| w.object_place(o).is_some()).collect();
                if known.is_empty() {
                    continue; // no object was touched: tell another story
                }
                let o = known[rng.below(known.len())];
                (q(&["where", "is", "the", OBJECTS[o]]), word_id(PLACES[w.object_place(o).unwrap()]))
            }
            6 => {
                let p = placed[rng.below(placed.len())];
                let asked = if rng.below(2) == 0 { w.at[p] } else { rng.below(PLACES.len()) };
                let ans = if asked == w.at[p] { "yes" } else { "no" };
                (q(&["is", PEOPLE[p], "in", "the", PLACES[asked]]), word_id(ans))
            }
            7 => {
                let p = placed[rng.below(placed.len())];
                let n = (0..OBJECTS.len()).filter(|&o| w.holder[o] == Some(p)).count();
                (q(&["how", "many", "objects", "is", PEOPLE[p], "carrying"]), number_id(n))
            }
            other => panic!("bAbI task {other} is not generated (1, 2, 6, 7 are)"),
        };
        let mut words = w.words;
        words.extend(question);
        return Story { task, words, answer };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays a story's statements to answer its question independently of the generator.
    fn answer_by_reading(s: &Story) -> usize {
        let words: Vec<&str> = s.words.iter().map(|&i| word(i)).collect();
        let sentences: Vec<&[&str]> = words.split(|w| *w == ".").collect();
        let (facts, question) = sentences.split_at(sentences.len() - 1);
        let mut at = std::collections::HashMap::new();
        let mut holder: std::collections::HashMap<&str, &str> = Default::default();
        let mut lying: std::collections::HashMap<&str, &str> = Default::default();
        for f in facts {
            let (who, verb, last) = (f[0], f[1], *f.last().unwrap());
            if MOVES.contains(&verb) {
                at.insert(who, last);
            } else if TAKES.contains(&verb) {
                holder.insert(last, who);
                lying.remove(last);
            } else if DROPS.contains(&verb) {
                holder.remove(last);
                lying.insert(last, at[who]);
            }
        }
        let q = question[0];
        match (q[0], q[1]) {
            ("where", "is") if q[2] == "the" => {
                let o = q[3];
                word_id(holder.get(o).map(|p| at[p]).or(lying.get(o).copied()).unwrap())
            }
            ("where", "is") => word_id(at[q[2]]),
            ("is", _) => word_id(if at[q[1]] == q[4] { "yes" } else { "no" }),
            ("how", _) => number_id(holder.values().filter(|p| **p == q[4]).count()),
            _ => panic!("unknown question {q:?}"),
        }
    }

    #[test]
    fn every_answer_follows_from_the_story() {
        let mut rng = Rng::new(1);
        for task in [1u8, 2, 6, 7] {
            let mut answers = std::collections::HashSet::new();
            for facts in [1usize, 3, 6, 10] {
                for _ in 0..50 {
                    let s = story(task, facts, &mut rng);
                    assert_eq!(*s.words.last().unwrap(), word_id("-"));
                    assert_eq!(answer_by_reading(&s), s.answer, "task {task}: {}", s.text());
                    answers.insert(s.answer);
                }
            }
            assert!(answers.len() >= 2, "task {task} has varied answers: {answers:?}");
        }
    }

    #[test]
    fn vocabulary_is_unique_and_stories_are_seeded() {
        let set: std::collections::HashSet<&str> = VOCAB.iter().copied().collect();
        assert_eq!(set.len(), VOCAB.len());
        assert_eq!(story(2, 5, &mut Rng::new(3)), story(2, 5, &mut Rng::new(3)));
        assert_eq!(word(number_id(3)), "three");
    }
}
