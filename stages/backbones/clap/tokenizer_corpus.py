"""The built-in text a random CLAP's tokenizer is trained on: sound words and the template words.

No tokenizer can be downloaded here, so `make_random_clap` trains a small byte-level BPE on this text.
It covers the class names of the benchmark datasets (so most of them become few tokens, as they would
with RoBERTa's vocabulary), common acoustic vocabulary and every default template. Byte-level BPE
still encodes any other string, byte by byte at worst, so nothing is ever out of vocabulary.
"""
from __future__ import annotations

from stages.backbones.config import DEFAULT_TEMPLATES

# Class names of the benchmark datasets (docs/method.md, "Protocols") and their usual spellings.
DATASET_CLASS_NAMES = """
dog rooster pig cow frog cat hen insects sheep crow rain sea waves crackling fire crickets chirping birds
water drops wind pouring water toilet flush thunderstorm crying baby sneezing clapping breathing coughing
footsteps laughing brushing teeth snoring drinking sipping door wood knock mouse click keyboard typing
door wood creaks can opening washing machine vacuum cleaner clock alarm clock tick glass breaking
helicopter chainsaw siren car horn engine train church bells airplane fireworks hand saw
air conditioner children playing dog bark drilling engine idling gun shot jackhammer street music
bass brass flute guitar keyboard mallet organ reed string synth lead vocal
angry disgust fear happy neutral sad calm surprised fearful disgusted
beach bus cafe restaurant car city center forest path grocery store home library metro station office
park residential area train tram
laughter sigh cough throat clearing sneeze sniff
blues classical country disco hiphop hip hop jazz metal pop reggae rock
dan jing laosheng qingyi casual gunshot explosion
"""

# Everyday acoustic vocabulary: sources, actions and qualities of sounds.
SOUND_WORDS = """
barking growling howling whining purring meowing hissing mooing oinking clucking crowing quacking honking
chirping tweeting singing humming buzzing croaking ribbit woof meow moo baa neigh roar squeak squawk
rustling leaves creaking squeaking rattling jingling clinking clanking banging slamming knocking tapping
ticking ringing beeping buzzer alarm siren horn whistle bell chime gong drum drums cymbal snare kick
hi-hat tabla piano violin cello trumpet saxophone clarinet harp banjo ukulele accordion harmonica
electric acoustic distorted loop beat bassline melody chord rhythm tempo loud quiet soft distant close
echo reverb noise static hum hiss crackle pop click thud thump crash smash splash drip dripping trickle
flowing running stream river ocean surf storm thunder lightning hail snow wind gust breeze blowing
engine motor car truck motorcycle bicycle bell traffic road highway tire screech brakes skid
airplane jet plane takeoff landing helicopter rotor train whistle railway tram subway station crowd
people talking chatter conversation speech speaking voice voices shouting screaming yelling whispering
crying sobbing laughing giggling cheering applause clapping footsteps walking running stomping
door opening closing lock key keys zipper paper crumpling tearing writing pencil scissors cutting
chopping frying sizzling boiling kettle microwave blender dishwasher fridge fan hair dryer shower
faucet tap sink bathtub flushing toilet vacuum cleaner washing machine printer phone ringtone
telephone notification computer typing mouse keyboard camera shutter clock ticking watch alarm
gunshot gunfire explosion fireworks firecracker glass shattering breaking window bottle can
hammer hammering sawing drilling drill jackhammer construction machinery saw grinder welding
baby infant child children kids man woman girl boy singer choir orchestra band concert music song
animal animals bird birds insect insects bee bees mosquito fly cricket frog frogs dog dogs puppy
cat kitten cow horse sheep goat pig chicken rooster hen duck goose owl crow pigeon seagull
whale dolphin lion tiger elephant monkey wolf
indoor outdoor urban rural nature city street market square park forest beach lake mountain
morning night quiet busy large small room hall kitchen bathroom bedroom office library church
high low pitch deep sharp bright dark warm harsh smooth rough short long repeated single many
"""

# Words the prompt templates and the LLM neighbor prompts use around class names.
FRAME_WORDS = """
a an the of this that is are was can be heard sound sounds audio recording recordings clip clips
photo sample samples noise of someone something made by from with in on at near far some
"""


def corpus_lines() -> list[str]:
    """Every line of the built-in corpus, in a fixed order (the trained tokenizer depends on it)."""
    lines: list[str] = []
    for block in (DATASET_CLASS_NAMES, SOUND_WORDS, FRAME_WORDS):
        lines.extend(line.strip() for line in block.strip().splitlines() if line.strip())
    words = " ".join(lines).split()
    # Each word also appears inside every template, so the merges learn ' word' with its leading
    # space and the punctuation that follows it, as RoBERTa's tokenizer sees them in prompts.
    for template in DEFAULT_TEMPLATES:
        lines.extend(template.format(word) for word in words)
    return lines
