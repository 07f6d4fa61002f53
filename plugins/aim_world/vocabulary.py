"""What the world can draw: nouns (Noto Emoji glyphs), colours, textures, sizes, backgrounds.

Every noun is one monochrome line-art glyph of the Noto Emoji font shipped by the
``manimgx-fonts`` package. The renderer fills the glyph's silhouette with a colour, so one
glyph gives an object of any colour with an exact pixel mask.

Lookups accept synonyms and plurals (``"puppies"`` -> ``"dog"``); :func:`lookup_noun`,
:func:`lookup_color`, ... return the canonical name or None.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

Zone = Literal["ground", "sky", "any"]


@dataclass(frozen=True)
class Noun:
    """One drawable object kind."""

    name: str
    codepoint: int
    category: str
    colors: tuple[str, ...]  # natural colours, used when a prompt names none
    synonyms: tuple[str, ...] = ()
    zone: Zone = "ground"  # where it usually is: standing on the ground, in the sky, anywhere
    worn: bool = False  # drawn on the head of its owner ("a dog wearing a hat")

    @property
    def char(self) -> str:
        return chr(self.codepoint)


def _n(name: str, cp: int, cat: str, colors: str, syn: str = "", zone: Zone = "ground", worn: bool = False) -> Noun:
    return Noun(name, cp, cat, tuple(colors.split()), tuple(s for s in syn.split(",") if s), zone, worn)


# fmt: off
NOUNS: tuple[Noun, ...] = (
    # animals
    _n("dog", 0x1F415, "animal", "brown black white orange", "puppy,pup,doggy,doggie,hound,canine"),
    _n("cat", 0x1F408, "animal", "orange gray black white", "kitten,kitty,feline,tomcat"),
    _n("bird", 0x1F426, "animal", "blue red yellow brown", "sparrow,songbird,robin,finch,chick", zone="any"),
    _n("fish", 0x1F41F, "animal", "orange blue yellow", "goldfish,trout,salmon"),
    _n("horse", 0x1F40E, "animal", "brown black white", "pony,stallion,mare,foal"),
    _n("cow", 0x1F404, "animal", "black brown white", "cattle,calf,bull,dairy cow"),
    _n("camel", 0x1F42A, "animal", "beige brown", "dromedary"),
    _n("elephant", 0x1F418, "animal", "gray", ""),
    _n("lion", 0x1F981, "animal", "orange brown", "lioness"),
    _n("frog", 0x1F438, "animal", "green", "toad"),
    _n("butterfly", 0x1F98B, "animal", "orange blue yellow purple", "moth", zone="any"),
    _n("pig", 0x1F416, "animal", "pink", "piglet,hog,swine,boar"),
    _n("sheep", 0x1F411, "animal", "white beige", "lamb,ewe,ram"),
    _n("goat", 0x1F410, "animal", "white brown", "kid goat"),
    _n("rabbit", 0x1F407, "animal", "white gray brown", "bunny,hare"),
    _n("mouse", 0x1F401, "animal", "gray brown", "rat,rodent,hamster"),
    _n("monkey", 0x1F412, "animal", "brown", "ape,chimp,chimpanzee"),
    _n("chicken", 0x1F413, "animal", "white red brown", "hen,rooster,cockerel"),
    _n("duck", 0x1F986, "animal", "yellow white brown", "duckling,mallard,goose"),
    _n("owl", 0x1F989, "animal", "brown gray", "", zone="any"),
    _n("eagle", 0x1F985, "animal", "brown", "hawk,falcon", zone="sky"),
    _n("penguin", 0x1F427, "animal", "black", ""),
    _n("turtle", 0x1F422, "animal", "green", "tortoise"),
    _n("snake", 0x1F40D, "animal", "green yellow", "serpent,cobra,python"),
    _n("lizard", 0x1F98E, "animal", "green", "gecko,iguana"),
    _n("crocodile", 0x1F40A, "animal", "green", "alligator,croc"),
    _n("whale", 0x1F40B, "animal", "blue gray", ""),
    _n("dolphin", 0x1F42C, "animal", "gray blue", "porpoise"),
    _n("shark", 0x1F988, "animal", "gray", ""),
    _n("octopus", 0x1F419, "animal", "purple red orange", ""),
    _n("crab", 0x1F980, "animal", "red orange", ""),
    _n("snail", 0x1F40C, "animal", "brown", "slug"),
    _n("bee", 0x1F41D, "animal", "yellow", "bumblebee,wasp,hornet", zone="any"),
    _n("ant", 0x1F41C, "animal", "black red", ""),
    _n("spider", 0x1F577, "animal", "black", "tarantula"),
    _n("ladybug", 0x1F41E, "animal", "red", "ladybird"),
    _n("giraffe", 0x1F992, "animal", "yellow orange", ""),
    _n("zebra", 0x1F993, "animal", "white", ""),
    _n("deer", 0x1F98C, "animal", "brown", "reindeer,stag,moose,elk,fawn"),
    _n("tiger", 0x1F405, "animal", "orange", ""),
    _n("leopard", 0x1F406, "animal", "yellow", "cheetah,jaguar,panther"),
    _n("bear", 0x1F43B, "animal", "brown black", "grizzly"),
    _n("kangaroo", 0x1F998, "animal", "brown", "wallaby"),
    _n("bat", 0x1F987, "animal", "black", "", zone="sky"),
    _n("squirrel", 0x1F43F, "animal", "brown", "chipmunk"),
    _n("hedgehog", 0x1F994, "animal", "brown", "porcupine"),
    _n("flamingo", 0x1F9A9, "animal", "pink", ""),
    _n("parrot", 0x1F99C, "animal", "green red", "macaw,parakeet", zone="any"),
    _n("peacock", 0x1F99A, "animal", "blue green", "peafowl"),
    _n("swan", 0x1F9A2, "animal", "white", ""),
    _n("dinosaur", 0x1F995, "animal", "green", "brontosaurus,sauropod,dino"),
    _n("t-rex", 0x1F996, "animal", "green", "tyrannosaurus,trex"),
    _n("gorilla", 0x1F98D, "animal", "black", ""),
    _n("rhinoceros", 0x1F98F, "animal", "gray", "rhino"),
    _n("hippopotamus", 0x1F99B, "animal", "gray", "hippo"),
    _n("llama", 0x1F999, "animal", "white beige", "alpaca"),
    _n("bison", 0x1F9AC, "animal", "brown", "buffalo"),
    _n("seal", 0x1F9AD, "animal", "gray", "sea lion,walrus"),
    _n("beetle", 0x1FAB2, "animal", "black green", "bug,insect,cockroach"),
    _n("scorpion", 0x1F982, "animal", "black brown", ""),
    _n("lobster", 0x1F99E, "animal", "red", "crayfish"),
    _n("jellyfish", 0x1FABC, "animal", "purple pink", ""),
    _n("unicorn", 0x1F984, "animal", "white pink", ""),
    _n("koala", 0x1F428, "animal", "gray", ""),
    _n("panda", 0x1F43C, "animal", "white", ""),
    # people
    _n("person", 0x1F9CD, "person", "blue red black", "man,woman,boy,girl,human,people,child,kid,lady,guy,"
       "adult,pedestrian,someone,figure"),
    _n("runner", 0x1F3C3, "person", "red blue", "jogger,athlete,sprinter"),
    _n("baby", 0x1F476, "person", "pink beige", "infant,toddler"),
    # vehicles
    _n("car", 0x1F697, "vehicle", "red blue black white gray", "automobile,sedan,auto,motorcar,vehicle"),
    _n("bus", 0x1F68C, "vehicle", "yellow red", "coach,school bus,minibus"),
    _n("truck", 0x1F69A, "vehicle", "white blue red", "lorry,delivery truck,van"),
    _n("pickup truck", 0x1F6FB, "vehicle", "red blue", "pickup"),
    _n("train", 0x1F682, "vehicle", "black red", "locomotive,steam engine,railway"),
    _n("tram", 0x1F68B, "vehicle", "red yellow", "streetcar,trolley,cable car"),
    _n("bicycle", 0x1F6B2, "vehicle", "red blue black", "bike,cycle"),
    _n("motorcycle", 0x1F3CD, "vehicle", "black red", "motorbike"),
    _n("scooter", 0x1F6F5, "vehicle", "red blue", "moped,vespa"),
    _n("airplane", 0x2708, "vehicle", "white gray", "plane,aeroplane,jet,aircraft,airliner", zone="sky"),
    _n("helicopter", 0x1F681, "vehicle", "red blue", "chopper", zone="sky"),
    _n("rocket", 0x1F680, "vehicle", "white red", "spaceship,spacecraft", zone="sky"),
    _n("boat", 0x26F5, "vehicle", "white red blue", "sailboat,ship,yacht,sail boat,vessel"),
    _n("ocean liner", 0x1F6A2, "vehicle", "white", "cruise ship,liner,steamship,ferry"),
    _n("canoe", 0x1F6F6, "vehicle", "brown red", "kayak,rowboat"),
    _n("speedboat", 0x1F6A4, "vehicle", "white red", "motorboat"),
    _n("tractor", 0x1F69C, "vehicle", "green red", ""),
    _n("ambulance", 0x1F691, "vehicle", "white", ""),
    _n("fire truck", 0x1F692, "vehicle", "red", "fire engine,firetruck"),
    _n("police car", 0x1F693, "vehicle", "white blue", "cop car,patrol car"),
    _n("taxi", 0x1F695, "vehicle", "yellow", "cab,taxicab"),
    _n("race car", 0x1F3CE, "vehicle", "red", "racecar,racing car,formula one"),
    _n("kick scooter", 0x1F6F4, "vehicle", "red blue", ""),
    _n("skateboard", 0x1F6F9, "vehicle", "red brown", ""),
    _n("ufo", 0x1F6F8, "vehicle", "gray green", "flying saucer", zone="sky"),
    # buildings and places
    _n("house", 0x1F3E0, "building", "red brown white", "home,cottage,cabin"),
    _n("castle", 0x1F3F0, "building", "gray", "palace,fortress"),
    _n("church", 0x26EA, "building", "white gray", "chapel"),
    _n("tent", 0x26FA, "building", "orange green", "camp"),
    _n("bridge", 0x1F309, "building", "gray red", "viaduct"),
    _n("mountain", 0x26F0, "nature", "gray brown", "hill,peak"),
    _n("volcano", 0x1F30B, "nature", "brown gray", ""),
    _n("fountain", 0x26F2, "building", "blue gray", ""),
    _n("factory", 0x1F3ED, "building", "gray", "plant building"),
    _n("hut", 0x1F6D6, "building", "brown beige", "shack,shed"),
    # plants
    _n("tree", 0x1F333, "plant", "green", "oak"),
    _n("pine tree", 0x1F332, "plant", "green", "evergreen,fir,christmas tree,pine,spruce,conifer"),
    _n("palm tree", 0x1F334, "plant", "green", "palm,coconut tree"),
    _n("cactus", 0x1F335, "plant", "green", "cacti"),
    _n("flower", 0x1F33C, "plant", "yellow pink white", "blossom,daisy,bloom"),
    _n("tulip", 0x1F337, "plant", "red pink", ""),
    _n("sunflower", 0x1F33B, "plant", "yellow", ""),
    _n("rose", 0x1F339, "plant", "red", ""),
    _n("mushroom", 0x1F344, "plant", "red brown", "toadstool,fungus"),
    _n("leaf", 0x1F341, "plant", "orange red green", "maple leaf,leaves"),
    _n("seedling", 0x1F331, "plant", "green", "sprout,plant,sapling"),
    # sky and nature
    _n("sun", 0x2600, "nature", "yellow orange", "sunshine", zone="sky"),
    _n("moon", 0x1F319, "nature", "yellow white", "crescent", zone="sky"),
    _n("star", 0x2B50, "nature", "yellow", "", zone="sky"),
    _n("cloud", 0x2601, "nature", "white gray", "", zone="sky"),
    _n("rainbow", 0x1F308, "nature", "red", "", zone="sky"),
    _n("snowflake", 0x2744, "nature", "white cyan", "", zone="sky"),
    _n("lightning", 0x26A1, "nature", "yellow", "lightning bolt,thunderbolt,bolt", zone="sky"),
    _n("fire", 0x1F525, "nature", "orange red", "flame,flames,campfire,blaze"),
    _n("water drop", 0x1F4A7, "nature", "blue cyan", "droplet,drop,raindrop,teardrop", zone="any"),
    _n("rock", 0x1FAA8, "nature", "gray brown", "stone,boulder,pebble"),
    _n("log", 0x1FAB5, "nature", "brown", "wood,firewood,timber,stump"),
    # food
    _n("apple", 0x1F34E, "food", "red green", ""),
    _n("banana", 0x1F34C, "food", "yellow", ""),
    _n("orange", 0x1F34A, "food", "orange", "tangerine,mandarin,clementine"),
    _n("lemon", 0x1F34B, "food", "yellow", "lime fruit"),
    _n("grapes", 0x1F347, "food", "purple green", "grape,bunch of grapes"),
    _n("strawberry", 0x1F353, "food", "red", ""),
    _n("cherry", 0x1F352, "food", "red", "cherries"),
    _n("pear", 0x1F350, "food", "green yellow", ""),
    _n("pineapple", 0x1F34D, "food", "yellow", ""),
    _n("watermelon", 0x1F349, "food", "green red", "melon"),
    _n("carrot", 0x1F955, "food", "orange", ""),
    _n("broccoli", 0x1F966, "food", "green", ""),
    _n("corn", 0x1F33D, "food", "yellow", "maize,corncob"),
    _n("pizza", 0x1F355, "food", "orange yellow", "pizza slice"),
    _n("hamburger", 0x1F354, "food", "brown", "burger,cheeseburger"),
    _n("hot dog", 0x1F32D, "food", "red brown", "hotdog,sausage"),
    _n("cake", 0x1F382, "food", "pink white", "birthday cake,gateau"),
    _n("donut", 0x1F369, "food", "pink brown", "doughnut"),
    _n("ice cream", 0x1F366, "food", "pink white beige", "icecream,ice cream cone,sundae"),
    _n("cookie", 0x1F36A, "food", "brown beige", "biscuit"),
    _n("bread", 0x1F35E, "food", "beige brown", "loaf,toast"),
    _n("egg", 0x1F95A, "food", "white beige", ""),
    _n("cheese", 0x1F9C0, "food", "yellow", ""),
    _n("pepper", 0x1F336, "food", "red green", "chili,chilli,chili pepper,hot pepper"),
    _n("tomato", 0x1F345, "food", "red", ""),
    _n("avocado", 0x1F951, "food", "green", ""),
    _n("potato", 0x1F954, "food", "brown beige", ""),
    _n("pumpkin", 0x1F383, "food", "orange", "jack o lantern,jack-o-lantern"),
    _n("croissant", 0x1F950, "food", "beige brown", ""),
    # household objects
    _n("cup", 0x2615, "object", "white red blue", "mug,coffee,coffee cup,teacup,tea"),
    _n("glass", 0x1F377, "object", "white cyan red", "wine glass,goblet,wineglass"),
    _n("bottle", 0x1F37C, "object", "white blue green", "flask,baby bottle"),
    _n("teapot", 0x1FAD6, "object", "white brown", "kettle"),
    _n("bowl", 0x1F963, "object", "white red", ""),
    _n("spoon", 0x1F944, "object", "gray", "ladle"),
    _n("fork", 0x1F374, "object", "gray", "fork and knife,cutlery,silverware"),
    _n("knife", 0x1F52A, "object", "gray", "kitchen knife,dagger"),
    _n("chair", 0x1FA91, "object", "brown", "seat,stool"),
    _n("couch", 0x1F6CB, "object", "brown red blue", "sofa,settee"),
    _n("bed", 0x1F6CF, "object", "brown white", ""),
    _n("door", 0x1F6AA, "object", "brown", "doorway"),
    _n("window", 0x1FA9F, "object", "white blue", "windowpane"),
    _n("toilet", 0x1F6BD, "object", "white", "loo"),
    _n("bathtub", 0x1F6C1, "object", "white", "bath,tub"),
    _n("clock", 0x1F55B, "object", "white black", "wall clock,watch face"),
    _n("alarm clock", 0x23F0, "object", "red black", ""),
    _n("lamp", 0x1FA94, "object", "orange yellow", "oil lamp,lantern,diya"),
    _n("light bulb", 0x1F4A1, "object", "yellow", "bulb,lightbulb"),
    _n("candle", 0x1F56F, "object", "white red", ""),
    _n("umbrella", 0x2602, "object", "red blue black", "parasol"),
    _n("key", 0x1F511, "object", "yellow gray", ""),
    _n("lock", 0x1F512, "object", "gray yellow", "padlock"),
    _n("book", 0x1F4D6, "object", "white brown", "open book,novel,textbook"),
    _n("pencil", 0x270F, "object", "yellow", "crayon"),
    _n("pen", 0x1F58A, "object", "blue black", "ballpoint,ink pen"),
    _n("scissors", 0x2702, "object", "red gray", "shears"),
    _n("hammer", 0x1F528, "object", "gray brown", "mallet"),
    _n("wrench", 0x1F527, "object", "gray", "spanner"),
    _n("axe", 0x1FA93, "object", "gray brown", "hatchet,ax"),
    _n("saw", 0x1FA9A, "object", "gray", "handsaw"),
    _n("ladder", 0x1FA9C, "object", "brown gray", ""),
    _n("bucket", 0x1FAA3, "object", "gray blue red", "pail"),
    _n("basket", 0x1F9FA, "object", "brown beige", "hamper"),
    _n("broom", 0x1F9F9, "object", "brown", "brush"),
    _n("mirror", 0x1FA9E, "object", "cyan gray", ""),
    _n("magnet", 0x1F9F2, "object", "red", "horseshoe magnet"),
    _n("puzzle piece", 0x1F9E9, "object", "green blue red", "jigsaw,jigsaw piece,puzzle,jigsaw puzzle"),
    _n("leash", 0x26D3, "object", "red gray black", "chain,chains,lead,dog leash"),
    _n("gift", 0x1F381, "object", "red blue", "present,gift box"),
    _n("package", 0x1F4E6, "object", "brown", "box,parcel,cardboard box,crate"),
    _n("envelope", 0x2709, "object", "white", "letter,mail"),
    _n("balloon", 0x1F388, "object", "red blue yellow", "", zone="sky"),
    _n("kite", 0x1FA81, "object", "red yellow", "", zone="sky"),
    _n("teddy bear", 0x1F9F8, "object", "brown", "teddy,stuffed animal,plush"),
    _n("dice", 0x1F3B2, "object", "white red", "die"),
    _n("robot", 0x1F916, "object", "gray", "android,droid"),
    _n("ghost", 0x1F47B, "object", "white", "spirit,phantom"),
    _n("skull", 0x1F480, "object", "white", ""),
    _n("heart", 0x2764, "object", "red pink", ""),
    _n("crown", 0x1F451, "object", "yellow", "tiara", worn=True),
    _n("ring", 0x1F48D, "object", "yellow", "wedding ring"),
    _n("gem", 0x1F48E, "object", "cyan blue", "diamond,jewel,crystal"),
    _n("anchor", 0x2693, "object", "gray black", ""),
    _n("flag", 0x1F6A9, "object", "red", "banner,pennant"),
    _n("trophy", 0x1F3C6, "object", "yellow", ""),
    _n("backpack", 0x1F392, "object", "red blue", "rucksack,schoolbag"),
    _n("handbag", 0x1F45C, "object", "red brown", "purse,bag"),
    _n("briefcase", 0x1F4BC, "object", "brown black", "suitcase"),
    _n("bell", 0x1F514, "object", "yellow", ""),
    _n("hourglass", 0x231B, "object", "beige", "sand timer"),
    _n("sword", 0x1F5E1, "object", "gray", "blade"),
    _n("shield", 0x1F6E1, "object", "gray red", ""),
    _n("bow and arrow", 0x1F3F9, "object", "brown", "bow,arrow,archery"),
    _n("paperclip", 0x1F4CE, "object", "gray", "paper clip"),
    _n("pushpin", 0x1F4CC, "object", "red", "thumbtack,pin"),
    _n("ruler", 0x1F4CF, "object", "yellow", ""),
    _n("clipboard", 0x1F4CB, "object", "brown", ""),
    _n("traffic light", 0x1F6A6, "object", "gray black", "stoplight,traffic signal"),
    _n("stop sign", 0x1F6D1, "object", "red", "road sign"),
    _n("fuel pump", 0x26FD, "object", "red", "gas pump,petrol pump,gas station"),
    _n("mailbox", 0x1F4EB, "object", "blue red", "postbox,letterbox"),
    _n("globe", 0x1F30D, "object", "blue green", "earth,world,planet"),
    _n("snowman", 0x26C4, "object", "white", ""),
    _n("candy", 0x1F36C, "food", "pink red", "sweet,bonbon"),
    _n("lollipop", 0x1F36D, "food", "pink red", ""),
    # electronics
    _n("phone", 0x1F4F1, "electronics", "black gray", "cellphone,smartphone,mobile phone,cell phone,iphone,mobile"),
    _n("telephone", 0x260E, "electronics", "black red", "landline,rotary phone"),
    _n("camera", 0x1F4F7, "electronics", "black gray", ""),
    _n("television", 0x1F4FA, "electronics", "black gray", "tv,telly"),
    _n("laptop", 0x1F4BB, "electronics", "gray black", "notebook computer"),
    _n("computer", 0x1F5A5, "electronics", "gray black", "desktop computer,monitor,pc,screen"),
    _n("keyboard", 0x2328, "electronics", "gray black", ""),
    _n("computer mouse", 0x1F5B1, "electronics", "gray white", ""),
    _n("watch", 0x231A, "electronics", "black gray", "wristwatch,smartwatch"),
    _n("battery", 0x1F50B, "electronics", "green gray", ""),
    _n("flashlight", 0x1F526, "electronics", "gray black", "torch"),
    _n("microscope", 0x1F52C, "electronics", "gray", ""),
    _n("telescope", 0x1F52D, "electronics", "gray", ""),
    _n("magnifying glass", 0x1F50D, "object", "gray", "magnifier,loupe"),
    _n("radio", 0x1F4FB, "electronics", "brown black", ""),
    _n("microphone", 0x1F3A4, "electronics", "black gray", "mic"),
    _n("headphones", 0x1F3A7, "electronics", "black", "headset,earphones", worn=True),
    # clothing
    _n("shoe", 0x1F45F, "clothing", "red blue white black", "sneaker,trainer,running shoe"),
    _n("boot", 0x1F97E, "clothing", "brown black", "hiking boot,boots"),
    _n("hat", 0x1F3A9, "clothing", "black", "top hat,cap,tophat", worn=True),
    _n("glasses", 0x1F453, "clothing", "black", "spectacles,eyeglasses", worn=True),
    _n("sunglasses", 0x1F576, "clothing", "black", "shades", worn=True),
    _n("t-shirt", 0x1F455, "clothing", "white red blue", "shirt,tshirt,tee"),
    _n("dress", 0x1F457, "clothing", "red blue pink", "gown,skirt"),
    _n("jeans", 0x1F456, "clothing", "blue", "trousers,pants"),
    _n("sock", 0x1F9E6, "clothing", "white red", "socks,stocking"),
    _n("glove", 0x1F9E4, "clothing", "red black", "gloves,mitten"),
    _n("scarf", 0x1F9E3, "clothing", "red blue", ""),
    _n("coat", 0x1F9E5, "clothing", "brown black", "jacket,lab coat"),
    _n("tie", 0x1F454, "clothing", "red blue", "necktie"),
    # music and sport
    _n("guitar", 0x1F3B8, "instrument", "brown red black", "electric guitar"),
    _n("banjo", 0x1FA95, "instrument", "brown", ""),
    _n("violin", 0x1F3BB, "instrument", "brown", "fiddle,cello"),
    _n("trumpet", 0x1F3BA, "instrument", "yellow", "horn,bugle"),
    _n("saxophone", 0x1F3B7, "instrument", "yellow", "sax"),
    _n("drum", 0x1F941, "instrument", "red white", "drums,snare drum"),
    _n("piano", 0x1F3B9, "instrument", "black white", "musical keyboard"),
    _n("accordion", 0x1FA97, "instrument", "red", ""),
    _n("ball", 0x26BD, "sport", "white red blue", "soccer ball,football ball,soccer,beach ball"),
    _n("basketball", 0x1F3C0, "sport", "orange", ""),
    _n("baseball", 0x26BE, "sport", "white", ""),
    _n("tennis racket", 0x1F3BE, "sport", "yellow", "tennis,racket,racquet,tennis ball"),
    _n("football", 0x1F3C8, "sport", "brown", "american football,rugby ball"),
    _n("volleyball", 0x1F3D0, "sport", "white", ""),
    _n("skis", 0x1F3BF, "sport", "red blue", "ski"),
    _n("ice skate", 0x26F8, "sport", "white", "skate,skates,ice skates"),
    _n("sled", 0x1F6F7, "sport", "red brown", "sledge,toboggan"),
    _n("fishing rod", 0x1F3A3, "sport", "brown", "fishing pole"),
    _n("boxing glove", 0x1F94A, "sport", "red", ""),
)
# fmt: on

#: Nouns drawn only when a prompt names them ("a glass of water", "a baseball bat"): not part of
#: :data:`NOUNS`, so datasets, surveys and synthetic neurons (which sample NOUNS) stay as they are.
PROMPT_ONLY_NOUNS: tuple[Noun, ...] = (
    _n("tumbler", 0x1F943, "object", "cyan white", "tumbler glass,water glass,drinking glass"),
    _n("cricket bat", 0x1F3CF, "sport", "beige brown", ""),
    # occluders for "a dog partly hidden behind a bush / a fence" (the fence is drawn as a barrier)
    _n("bush", 0x1F33F, "plant", "green", "shrub,hedge"),
    _n("fence", 0x1F6A7, "object", "orange white brown", "barrier,railing"),
)

NOUN_BY_NAME: dict[str, Noun] = {n.name: n for n in (*NOUNS, *PROMPT_ONLY_NOUNS)}

#: Real-world size classes, 1 (an ant, a key) to 6 (a mountain), so a scene keeps plausible relative
#: sizes: a tulip next to a tree is small, an airplane is not bigger than the mountains. Each noun takes
#: its category's class unless listed in :data:`_SCALE_EXCEPTIONS`.
_SCALE_BY_CATEGORY: dict[str, int] = {
    "animal": 3, "person": 4, "food": 2, "nature": 4, "electronics": 2, "clothing": 2, "plant": 2, "sport": 2,
    "vehicle": 4, "instrument": 3, "building": 5, "object": 2,
}
_SCALE_EXCEPTIONS: dict[int, tuple[str, ...]] = {
    1: ("ant", "bee", "ladybug", "beetle", "spider", "snail", "butterfly", "ring", "gem", "paperclip", "pushpin",
        "dice", "key", "water drop", "cherry", "candy", "seedling", "grapes", "lollipop", "egg", "battery"),
    3: ("sunflower", "cactus", "bicycle", "kick scooter", "skateboard", "sled",
        "skis", "chair", "lamp", "television", "computer", "guitar", "backpack", "bucket", "basket", "mailbox",
        "fuel pump", "traffic light", "stop sign", "ladder", "broom", "flag", "robot", "ghost", "snowman",
        "baby", "fire", "rock", "log", "bush", "fence", "watermelon", "pumpkin", "canoe", "tent", "umbrella", "mirror"),
    2: ("mouse", "frog", "lizard", "hedgehog", "crab", "scorpion", "snake", "fish", "bird", "parrot", "owl", "duck",
        "chicken", "rabbit", "squirrel", "turtle", "lobster", "octopus", "jellyfish", "bat", "trumpet", "violin",
        "saxophone", "banjo", "accordion", "hat", "boot", "shoe"),
    4: ("horse", "cow", "bear", "lion", "tiger", "leopard", "gorilla", "camel", "bison", "zebra", "deer", "llama",
        "kangaroo", "crocodile", "shark", "dolphin", "unicorn", "hippopotamus", "rhinoceros", "panda", "piano",
        "couch", "bed", "bathtub", "door", "window", "hut", "fountain", "moon", "sun", "star", "cloud", "rainbow"),
    5: ("tree", "palm tree", "pine tree",
        "elephant", "giraffe", "whale", "t-rex", "dinosaur", "bus", "truck", "fire truck", "train", "tram",
        "airplane", "ocean liner", "helicopter", "rocket", "ufo", "tractor", "ambulance", "pickup truck", "boat",
        "speedboat"),
    6: ("mountain", "volcano"),
}
_SCALE_OF: dict[str, int] = {noun: k for k, nouns in _SCALE_EXCEPTIONS.items() for noun in nouns}
assert set(_SCALE_OF) <= set(NOUN_BY_NAME), f"unknown nouns in _SCALE_EXCEPTIONS: {set(_SCALE_OF) - set(NOUN_BY_NAME)}"


#: each size class below a scene's largest multiplies an object's size by this
SCALE_STEP = 0.7


def real_scale(noun: str) -> int:
    """The real-world size class of a noun: 1 (tiny: an ant, a key) to 6 (a mountain)."""
    if noun not in NOUN_BY_NAME:
        raise KeyError(f"unknown noun {noun!r}")
    return _SCALE_OF.get(noun, _SCALE_BY_CATEGORY.get(NOUN_BY_NAME[noun].category, 3))


# Colours: canonical name -> RGB. Distinct enough that a small CNN (and a person) tells them apart.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (250, 215, 35),
    "green": (40, 165, 60),
    "blue": (35, 85, 215),
    "purple": (130, 55, 185),
    "pink": (245, 135, 190),
    "brown": (135, 80, 35),
    "black": (28, 28, 28),
    "white": (245, 245, 245),
    "gray": (135, 135, 140),
    "cyan": (30, 200, 220),
    "magenta": (205, 30, 175),
    "beige": (222, 196, 150),
}
COLOR_SYNONYMS: dict[str, str] = {
    "grey": "gray", "silver": "gray", "violet": "purple", "lavender": "purple", "crimson": "red",
    "scarlet": "red", "golden": "yellow", "gold": "yellow", "tan": "beige", "cream": "beige",
    "turquoise": "cyan", "aqua": "cyan", "teal": "cyan", "fuchsia": "magenta", "navy": "blue",
    "olive": "green", "maroon": "red", "lime": "green", "ivory": "white", "ginger": "orange",
    "reddish": "red", "bluish": "blue", "greenish": "green", "yellowish": "yellow", "pinkish": "pink",
    "brownish": "brown", "greyish": "gray", "grayish": "gray", "purplish": "purple", "orangish": "orange",
    "blonde": "yellow", "blond": "yellow",
}

TEXTURES: tuple[str, ...] = ("stripes", "dots", "checkers", "spiral", "waves")
TEXTURE_SYNONYMS: dict[str, str] = {
    "stripes": "stripes", "striped": "stripes", "stripy": "stripes", "stripe": "stripes", "stripey": "stripes",
    "dots": "dots", "dot": "dots", "dotted": "dots", "spotted": "dots", "spots": "dots", "spotty": "dots",
    "polka dot": "dots", "polka dots": "dots", "polka dotted": "dots", "polka": "dots", "speckled": "dots",
    "checkers": "checkers", "checkered": "checkers", "chequered": "checkers", "checked": "checkers",
    "checkerboard": "checkers", "checker": "checkers", "plaid": "checkers", "tartan": "checkers",
    "gingham": "checkers", "checks": "checkers",
    "spiral": "spiral", "spirals": "spiral", "swirl": "spiral", "swirls": "spiral", "swirly": "spiral",
    "spiraled": "spiral", "spiralled": "spiral",
    "waves": "waves", "wavy": "waves", "wave": "waves", "zigzag": "waves", "zigzags": "waves",
}

# Size words -> factor on the default object size.
SIZES: dict[str, float] = {
    "tiny": 0.45, "little": 0.7, "small": 0.7, "miniature": 0.45, "mini": 0.45,
    "medium": 1.0, "big": 1.35, "large": 1.35, "huge": 1.7, "giant": 1.7, "enormous": 1.7, "massive": 1.7,
}
STYLES: dict[str, str] = {
    "outline": "outline", "outlined": "outline", "outlines": "outline", "line": "outline",
    "sketch": "outline", "sketched": "outline", "hollow": "outline", "wireframe": "outline",
    "filled": "filled", "solid": "filled", "silhouette": "filled",
}


@dataclass(frozen=True)
class Background:
    """A procedurally drawn background; ``horizon`` is where the ground starts (fraction of height)."""

    name: str
    synonyms: tuple[str, ...]
    horizon: float | None  # None: no ground line (objects anywhere)


# fmt: off
BACKGROUNDS: tuple[Background, ...] = (
    Background("plain", ("plain background", "white background", "blank background", "studio", "nothing"), None),
    Background("sky", ("sky", "skies", "air", "clouds", "blue sky", "cloudy sky", "heavens"), None),
    Background("grass", ("grass", "grassy", "lawn", "meadow", "field", "park", "grassland", "pasture", "garden",
                         "yard", "backyard", "green field"), 0.38),
    Background("water", ("water", "sea", "ocean", "lake", "river", "pond", "pool", "underwater"), 0.25),
    Background("snow", ("snow", "snowy", "winter", "ice", "snowfield", "snowy field", "arctic", "tundra"), 0.4),
    Background("beach", ("beach", "sand", "sandy beach", "shore", "seashore", "seaside", "coast", "sea shore"), 0.5),
    Background("desert", ("desert", "dunes", "sand dunes", "sahara", "savanna", "savannah"), 0.45),
    Background("road", ("road", "street", "highway", "asphalt", "freeway", "city street", "parking lot"), 0.35),
    Background("brick wall", ("brick wall", "bricks", "brick", "wall", "brickwork"), None),
    Background("forest", ("forest", "woods", "woodland", "jungle", "rainforest"), 0.62),
    Background("room", ("room", "indoors", "indoor", "living room", "kitchen", "bedroom",
                        "indoor room", "office", "home interior", "interior"), 0.62),
    Background("night", ("night", "night sky", "nighttime", "starry sky", "darkness", "space",
                         "outer space", "midnight"), 0.8),
    Background("mountains", ("mountains", "mountain", "hills", "alps", "valley", "mountain range",
                             "highlands"), 0.6),
)
# fmt: on
BACKGROUND_BY_NAME: dict[str, Background] = {b.name: b for b in BACKGROUNDS}
DEFAULT_BACKGROUND = "plain"


# --------------------------------------------------------------------------- font


def font_path() -> Path:
    """The Noto Emoji font file of the ``manimgx-fonts`` package."""
    try:
        root = resources.files("manimgx_fonts")
        path = Path(str(root.joinpath("NotoEmoji[wght].ttf")))
    except ModuleNotFoundError as exc:  # pragma: no cover - dependency of the package
        raise RuntimeError("the world needs the 'manimgx-fonts' package: pip install manimgx-fonts") from exc
    if not path.exists():  # pragma: no cover
        raise RuntimeError(f"NotoEmoji[wght].ttf not found in manimgx_fonts ({root})")
    return path


# --------------------------------------------------------------------------- word forms

_IRREGULAR_PLURALS = {
    "mouse": ["mice"], "goose": ["geese"], "person": ["people", "persons"], "man": ["men"],
    "woman": ["women"], "child": ["children"], "knife": ["knives"], "leaf": ["leaves"],
    "wolf": ["wolves"], "loaf": ["loaves"], "calf": ["calves"], "sheep": ["sheep"], "fish": ["fish", "fishes"],
    "deer": ["deer"], "bison": ["bison"], "moose": ["moose"], "ox": ["oxen"], "cactus": ["cacti", "cactuses"],
    "octopus": ["octopuses", "octopi"], "hippopotamus": ["hippopotamuses", "hippopotami"],
    "elk": ["elk"], "buffalo": ["buffalo", "buffaloes"], "tomato": ["tomatoes"], "potato": ["potatoes"],
    "die": ["dice"], "dice": ["dice"], "grapes": ["grapes"], "scissors": ["scissors"], "jeans": ["jeans"],
    "glasses": ["glasses"], "sunglasses": ["sunglasses"], "skis": ["skis"], "headphones": ["headphones"],
    "shears": ["shears"], "trousers": ["trousers"], "pants": ["pants"], "leaves": ["leaves"],
    "chains": ["chains"], "boots": ["boots"], "socks": ["socks"], "gloves": ["gloves"], "drums": ["drums"],
    "cherries": ["cherries"], "people": ["people"], "sweet": ["sweets"], "flames": ["flames"],
    "cacti": ["cacti"], "shades": ["shades"], "skates": ["skates"], "ice skates": ["ice skates"],
}


def plurals(word: str) -> list[str]:
    """English plural forms of a (possibly multi-word) noun; the last word is inflected."""
    head, _, last = word.rpartition(" ")
    prefix = head + " " if head else ""
    if last in _IRREGULAR_PLURALS:
        return [prefix + p for p in _IRREGULAR_PLURALS[last]]
    if last.endswith(("s", "x", "z", "ch", "sh")):
        forms = [last + "es"]
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        forms = [last[:-1] + "ies"]
    elif last.endswith("fe"):
        forms = [last[:-2] + "ves", last + "s"]
    else:
        forms = [last + "s"]
    return [prefix + f for f in forms]


@lru_cache(maxsize=65536)
def _normalize(text: str) -> str:
    """Lower case, hyphens and underscores as spaces, single spaces; remembered (a run looks up the same
    words hundreds of thousands of times)."""
    return " ".join(text.lower().replace("-", " ").replace("_", " ").split())


@cache
def noun_lexicon() -> dict[str, str]:
    """Every accepted noun form (name, synonym, plural; hyphens as spaces) -> canonical noun."""
    lex: dict[str, str] = {}
    for noun in (*NOUNS, *PROMPT_ONLY_NOUNS):
        for form in (noun.name, *noun.synonyms):
            for variant in (form, *plurals(form)):
                lex.setdefault(_normalize(variant), noun.name)
                lex.setdefault(_normalize(variant).replace(" ", ""), noun.name)
    for noun in NOUNS:  # canonical names always win over a synonym of another noun
        lex[_normalize(noun.name)] = noun.name
    return lex


@cache
def color_lexicon() -> dict[str, str]:
    lex = {c: c for c in COLORS}
    lex.update({k: v for k, v in COLOR_SYNONYMS.items() if v})
    return lex


@cache
def background_lexicon() -> dict[str, str]:
    lex: dict[str, str] = {}
    for bg in BACKGROUNDS:
        for form in (bg.name, *bg.synonyms):
            lex.setdefault(_normalize(form), bg.name)
    return lex


def lookup_noun(word: str) -> str | None:
    """Canonical noun for a word or phrase ("puppies" -> "dog"), or None."""
    return noun_lexicon().get(_normalize(word))


def lookup_color(word: str) -> str | None:
    return color_lexicon().get(_normalize(word))


def lookup_texture(word: str) -> str | None:
    return TEXTURE_SYNONYMS.get(_normalize(word))


def lookup_background(word: str) -> str | None:
    return background_lexicon().get(_normalize(word))


def closest_words(word: str, n: int = 5) -> list[str]:
    """Vocabulary words that look like ``word`` (for error messages)."""
    pool = list(noun_lexicon()) + list(color_lexicon()) + list(TEXTURE_SYNONYMS) + list(background_lexicon())
    return difflib.get_close_matches(_normalize(word), pool, n=n, cutoff=0.6)


def describe_vocabulary() -> str:
    """A short text of what the world can draw (for prompts and error messages)."""
    return (
        f"{len(NOUNS)} objects (e.g. {', '.join(n.name for n in NOUNS[:12])}, ...); colours: "
        f"{', '.join(COLORS)}; textures: {', '.join(TEXTURES)}; backgrounds: "
        f"{', '.join(b.name for b in BACKGROUNDS)}"
    )


def rgb(color: str) -> tuple[int, int, int]:
    """RGB of a canonical colour name (KeyError with the valid names otherwise)."""
    try:
        return COLORS[color]
    except KeyError:
        raise KeyError(f"unknown colour {color!r}; valid: {', '.join(COLORS)}") from None
