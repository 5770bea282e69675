"""Judgments of the search dev set: grade every pooled (query, item) pair and write ``qrels.txt``.

The judge (one person, reading each query's pool; see README.md for the guidelines) wrote, per query, an
ordered list of ``(pattern, grade)`` rules over the item's **title** (lowercased; the first pattern that
matches gives the grade, no match gives 0) plus explicit per-item overrides where a title needed a
decision of its own (a kit, a size range, a title that says nothing). The rules are the record of those
decisions, so that the judgments can be re-derived, reviewed and corrected in one place; typo queries
share the rules of the keyword query they misspell.

Usage::

    .venv/bin/python bench/search/build_pools.py           # bench-results/search-pools/pools.tsv
    .venv/bin/python bench/search/judgments.py             # writes bench/search/qrels.txt, prints stats
    .venv/bin/python bench/search/judgments.py --show k01  # one query's pool with grades, for review
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
POOLS = ROOT / "bench-results" / "search-pools" / "pools.tsv"

Rule = tuple[str, int]
Judgment = tuple[list[Rule], dict[str, int]]

# Accessories of wet/dry vacuums (hoses, filters, adapters...) in the Scientific catalogue.
VAC_ACCESSORIES = ("18", "400", "705", "867", "957", "1075", "1126", "1137", "1771", "1777", "882")

# fmt: off
RULES: dict[str, Judgment | str] = {
    "k01": (
        [
            (r"depth base|readout|dial indicator|lever lock|spring caliper|plastic caliper", 1),
            (r"(digital|electronic|lcd).{0,60}caliper|caliper.{0,30}digital", 3),
            (r"caliper|micrometer", 2),
        ],
        {"112": 1},
    ),
    "k02": (
        [
            (r"holder|dispenser", 1),
            (r"nitrile", 3),
            (r"glove", 1),
        ],
        {},
    ),
    "k03": (
        [
            (r"\bpla\b", 3),
            (r"filament|3d printer", 1),
        ],
        {"347": 1, "358": 1, "706": 1, "1834": 1, "2474": 1},
    ),
    "k04": (
        [
            (r"duct ?tape|ductape|gorilla tape|gorilla 6100101", 3),
            (r"gaffer|repair tape|utility tape|ferociously strong", 2),
            (r"tape", 1),
        ],
        {
            "1436": 2, "817": 2, "1347": 2, "1553": 1, "128": 1, "263": 1, "560": 1, "746": 1,
            "809": 1, "1404": 1, "3077": 1, "3725": 1, "933": 0, "726": 0, "4122": 0,
        },
    ),
    "k05": (
        [
            (r"fuse holder", 0),
            (r"connector|terminal", 1),
            (r"heat shrink tape", 2),
            (r"heat.?shrink|shrink tub", 3),
        ],
        {},
    ),
    "k06": (
        [
            (r"duct silencer", 0),
            (r"\bph\b.{0,40}(meter|tester|pen|hydrotester)|(meter|tester).{0,40}\bph\b", 3),
            (r"\bph\b.{0,30}(paper|strip)|litmus|ph paper|ph test", 2),
            (r"tds|water quality", 1),
        ],
        {},
    ),
    "k07": (
        [
            (r"thermometer|brush", 0),
            (r"mug|cover|tongs|cylinder", 1),
            (r"beaker", 3),
        ],
        {},
    ),
    "k08": (
        [
            (r"jaw|jack set|angle block", 1),
            (r"bench vise|swivel vise|table vi[sc]e|multi-purpose vise|multi-angle", 3),
            (r"vi[sc]e", 2),
        ],
        {},
    ),
    "k09": (
        [
            (r"label|hinge", 0),
            (r"liquid electrical", 2),
            (r"electrical tape|electrical ta\b|insulating electrical", 3),
            (r"splic|mastic|self.?fusing|harness|wiring tape|pvc tape|rescue tape|repair tape", 2),
            (r"kapton|polyimide|copper|foil|vinyl|duct|gaffer", 1),
        ],
        {"1919": 1},
    ),
    "k10": (
        [
            (r"accelerator|debonder|un-cure", 1),
            (r"brush & nozzle|museum gel", 0),
            (r"super ?glue|krazy|crazy glue|cyanoacrylate|\bca\b|insta-?cure|instant glue", 3),
            (r"epoxy|\buv\b|lazer bond|rapidfix|plastic bonder|glass glue|vetbond", 2),
            (r"glue|adhesive|goo\b", 1),
        ],
        {"1957": 2, "1823": 0},
    ),
    "k11": (
        [
            (r"hinge", 0),
            (r"bullet|spade|crimp cap", 1),
            (r"butt (connector|splice|wire|insulated)|butt connec|heat shrink butt", 3),
            (r"assort|kit|crimp terminals|electrical connectors|terminal kit", 2),
        ],
        {"525": 3, "913": 3, "1229": 3, "2870": 1, "3114": 0, "3480": 0},
    ),
    "k12": (
        [
            (r"probe|adapter|pickup", 1),
            (r"oscilloscope|\bdso\b|dso ?\d", 3),
            (r"generator|esr", 1),
        ],
        {},
    ),
    "k13": (
        [
            (r"case|holder|clip", 1),
            (r"sphygmomanometer|blood pressure|lisle", 2),
            (r"stethoscope", 3),
        ],
        {},
    ),
    "k14": (
        [
            (r"infrared|infared|\bir\b|non.?contact|laser", 3),
            (r"thermometer|temp", 1),
        ],
        {},
    ),
    "k15": (
        [
            (r"hydrometer", 3),
            (r"refractometer", 2),
        ],
        {"2717": 1, "3407": 1, "133": 1},
    ),
    "k16": (
        [
            (r"check valve|float", 1),
            (r"ball valve", 3),
            (r"valve", 1),
        ],
        {},
    ),
    "k17": (
        [
            (r"hook", 2),
            (r"viewing film", 1),
            (r"neodymium|rare earth|ndfeb|\bn(35|38|42|45|48|52)\b", 3),
            (r"magnet", 1),
        ],
        {"757": 2, "1324": 2},
    ),
    "k18": (
        [
            (r"peg|standoff|relay|teensy|header|lubricant|shooter", 0),
            (r"jumper|adapter|breakout|cable wire kit", 1),
            (r"pc breadboard|solderable", 2),
            (r"breadboard|bread board", 3),
            (r"prototyp|pcb|protoboard|circuit board", 2),
        ],
        {"3627": 1},
    ),
    "k19": (
        [
            (r"polishing paper", 0),
            (r"dust collector|air mover|ash vac", 1),
            (r"wet.?/?.?dry|wet dry", 3),
            (r"vac", 2),
        ],
        dict.fromkeys(VAC_ACCESSORIES, 1),
    ),
    "k20": (
        [
            (r"3d printer", 0),
            (r"erlenmeyer", 3),
            (r"filtering fla", 2),
            (r"flask|funnel", 1),
        ],
        {"1064": 1},
    ),
    "k21": (
        [
            (r"rack", 1),
            (r"test tube", 3),
            (r"cylinder|test jar", 1),
        ],
        {"3390": 1, "2387": 1, "2755": 3},
    ),
    "k22": (
        [
            (r"refractory|test jar", 0),
            (r"calibration", 1),
            (r"refractometer", 3),
            (r"hydrometer", 2),
        ],
        {},
    ),
    "n01": (
        [
            (r"depth base|readout|spring caliper|figure 8", 1),
            (r"micrometer|gage, wire metal|caliper", 3),
            (r"feeler|dial indicator|indicator gage", 2),
        ],
        {"112": 1},
    ),
    "n02": (
        [
            (
                r"accelerator|vetbond|museum|glue dots|"
                r"dot sheets|brush & nozzle|plumbers' putty|white glue|carrying case",
                0,
            ),
            (
                r"plastic bonder|plastic fusion|conductive|glass glue|rtv|gorilla glue adhesive|"
                r"rapidfix|lazer bond|goop|power grab|knife grade|shoe goo",
                1,
            ),
            (
                r"(5|five|one|1) minute|quick.?set|"
                r"quik|kwik|minuteweld|instant.?setting|quick-cure|instant mix",
                3,
            ),
            (r"epoxy|cold-weld|putty|barge|cement", 2),
            (r"super ?glue|krazy|crazy glue|\bca\b|cyanoacrylate|instant glue|insta-cure", 2),
        ],
        {},
    ),
    "n03": (
        [
            (r"gaff", 3),
            (r"duct tape", 2),
            (r"stripe tape|hazard|velcro", 1),
        ],
        {},
    ),
    "n04": (
        [
            (r"desiccant|silica gel", 3),
            (r"zipper reclosable|food storage", 1),
        ],
        {},
    ),
    "n05": (
        [
            (r"controller|thermostat|charger", 0),
            (r"infrared|infared|\bir\b|non.?contact|laser", 3),
            (r"thermal imager", 2),
            (
                r"thermometer|thermocouple|temperature meter|"
                r"temperature sensor|temp sensor|ds18b20|humidity measurement",
                1,
            ),
        ],
        {},
    ),
    "n06": (
        [
            (r"holder|dispenser", 1),
            (r"nitrile.{0,40}glove|glove.{0,60}nitrile", 3),
            (r"glove", 2),
        ],
        {},
    ),
    "n07": (
        [
            (r"calibration", 0),
            (r"anti-freeze hydrometer", 0),
            (r"antifreeze", 1),
            (r"proof|alcohol hydrometer|alcoholmeter", 1),
            (r"test jar", 1),
            (r"refractometer|hydrometer", 3),
            (r"\bph\b", 1),
        ],
        {"3350": 3},
    ),
    "n08": (
        [
            (r"duct silencer|acid blend|citric|gold|toilet|retaining", 0),
            (r"calibration|buffer|storage solution|cleaning solution", 1),
            (r"urine|saliva|0\.0-6\.0", 2),
            (r"\bph\b|litmus", 3),
            (r"well water test", 2),
            (r"tds|conductivity|salinity|hardness", 1),
        ],
        {"1110": 3},
    ),
    "n09": (
        [
            (r"mirror", 1),
            (r"borescope|endoscope|inspection camera|snake|pipe cam|inspection tube|video inspection", 3),
            (r"thermal imag", 1),
        ],
        {},
    ),
    "n10": (
        [
            (r"hose clamp|clamp meter|burette|retort|ear clamp|cinch", 0),
            (r"drill press vise|cross.?slid|milling|lockdown", 1),
            (r"jaw|v-block", 1),
            (
                r"woodworking vise|cabinet maker|wood vise|bench vise|"
                r"swivel vise|multi-purpose vise|multi-angle|table vi[sc]e",
                3,
            ),
            (r"vise", 2),
        ],
        {},
    ),
    "n11": (
        [
            (r"polishing paper|ash vac|dust collector", 0),
            (r"wet.?/?.?dry|wet dry", 3),
            (r"air mover|carpet dryer|squeegee", 2),
            (r"carpet cleaner|water pump|mop pad", 1),
        ],
        {**dict.fromkeys(VAC_ACCESSORIES, 1), "1446": 0},
    ),
    "n12": (
        [
            (r"fuse holder|piercing", 0),
            (r"solder seal|soldering sleeve", 2),
            (r"connector|terminal", 1),
            (r"heat shrink tape", 2),
            (r"heat.?shrink|shrink tub", 3),
            (
                r"liquid electrical|electrical tape|electrical ta\b|insulating electrical|"
                r"splic|mastic|self.?fusing|stretch & seal",
                2,
            ),
            (r"harness tape|wire loom", 1),
        ],
        {},
    ),
    "n13": (
        [
            (r"ptfe|thread seal|thread sealant|pipe joint compound|pipe sealant", 3),
            (r"flex seal|threadlocker", 1),
        ],
        {},
    ),
    "n14": (
        [
            (r"cleaner|protectant|chock|tire service step|bumper", 0),
            (r"auto dolly|trailer dolly|car dolly|trash dolly|tire", 1),
            (r"mover|moving|forklift|lifting strap|furniture", 3),
            (r"hand truck|dolly|platform|cart", 2),
            (r"pneumatic|caster", 1),
        ],
        {"73": 3, "514": 1, "573": 2, "627": 0, "2386": 0},
    ),
    "n15": (
        [
            (r"electrode gel|degreaser|cutting fluid|fitting kit|tape|sheet|bottle|scalpel|foil", 0),
            (r"penetra|rust release|aerokroil|lock dry lube|vactra|way oil", 2),
            (r"lubric|lube|wd-40|3-in-one|oil|grease|teflon|clp", 3),
        ],
        {"399": 3},
    ),
    "n16": (
        [
            (
                r"ph meter|regulator|converter|terminal|relay|power switch|splitter|"
                r"fuel pump|hook up wire|pcb|thermistor|bnc|generator|magnetic base|angle block",
                0,
            ),
            (r"case|probe|test lead|piercing|adaptor|voltalert|non-contact", 1),
            (r"multimet|clamp meter|clamp m\b", 3),
            (r"voltmeter|ammeter|amp gauge|voltage tester|current tester|flex current|ampere", 2),
            (r"esr|transistor checker|phase sequence", 1),
        ],
        {"2631": 2, "3096": 3},
    ),
    "n17": (
        [
            (r"case|holder|clip", 1),
            (r"lisle", 1),
            (r"sphygmomanometer|blood pressure", 2),
            (r"stethoscope", 3),
        ],
        {},
    ),
    "n18": (
        [
            (r"cut.?off|grinding|towing wiring|foot switch|buff|cup wheel|cutting wheel|flask", 0),
            (r"dolly|hand truck|cart|replacement wheel", 1),
            (r"stem|threaded", 2),
            (r"caster|industrial wheel", 3),
        ],
        {"2250": 2, "40": 3},
    ),
    "n19": (
        [
            (r"breadboard|pcb|proto", 0),
            (r"peg lock", 1),
            (r"bins|shelf|tray", 2),
            (r"peg ?board|peg hook|peghook|peg-a-system|wallpeg", 3),
            (r"magnetic tool bar", 2),
            # Second round (semantic pools): tool holders made for a pegboard.
            (r"peggable|(screwdriver|pliers) holder", 2),
            (r"drill bit stand|storage hook", 1),
        ],
        {},
    ),
    "n20": (
        [
            (r"spout kit", 1),
            (r"oily waste", 2),
            (r"safety can|gas can|gasoline", 3),
            (r"drum|aerosol can caddy", 1),
        ],
        {"1432": 1, "2819": 0},
    ),
    "n21": (
        [
            (r"step.?drill|unibit", 3),
        ],
        {},
    ),
    "n22": (
        [
            (r"tpe-x|coupl", 0),
            (r"\btpu\b|flexible.{0,30}filament|ninjaflex|semiflex", 3),
            (r"filament|3d printer", 1),
        ],
        {"430": 1},
    ),
    "t01": "k02",
    "t02": "k01",
    "t03": "k12",
    "t04": "k13",
    "t05": "k15",
    "t06": "k20",
    "t07": "k18",
    "t08": "k05",
    "t09": "k09",
    "t10": "k07",
    "t11": "k22",
    "t12": (
        [
            (r"mirror", 1),
            (r"borescope|endoscope|inspection camera|snake|pipe cam|inspection tube|video inspection", 3),
            (r"thermal imag|thermal camera", 1),
        ],
        {},
    ),
    "t13": (
        [
            (r"beads", 2),
            (r"canister|spad", 2),
            (r"desiccant|silica gel", 3),
        ],
        {},
    ),
    "t14": "k14",
    "t15": (
        [
            (r"magnif|loupe", 3),
        ],
        {},
    ),
    "t16": "k04",
    "t17": (
        [
            (r"ph meter", 0),
            (r"case|probe|test lead|piercing", 1),
            (r"clamp meter|current tester|oscilloscope", 2),
            (r"multimet", 3),
        ],
        {},
    ),
    "t18": (
        [
            (r"pump", 1),
            (r"pipet|pippet", 3),
            (r"dropper", 2),
            (r"cylinder", 1),
        ],
        {"3745": 1},
    ),
    "t19": (
        [
            (
                r"vacuum pump|pressure gauge|transformer|fuel line|detergent|"
                r"alcohol|toilet|furniture cleaner|resolve|autoswitch|file and rasp",
                0,
            ),
            (r"carpet cleaner|spotter|floor scrubber|robot mop|floor cleaner", 1),
            (r"wet.?/?.?dry|wet dry", 2),
            (r"vacuum|vacs?\b", 3),
        ],
        {**dict.fromkeys(VAC_ACCESSORIES, 1), "361": 1, "472": 1, "640": 1, "802": 1, "68": 1},
    ),
    "t20": "k03",
    "a01": (
        [
            (r"mitutoyo.*micrometer", 3),
            (r"\bmicrometer\b", 2),
            (r"mitutoyo", 1),
        ],
        {"96": 1},
    ),
    "a02": (
        [
            (r"thermistor|rivet nut tool|riveter", 0),
            (r"\btaps?\b", 1),
            (r"insert", 1),
            (r"(spacer|standoff|stand-off).{0,60}screw|screw.{0,30}(spacer|standoff|stand-off)", 2),
            (r"spacer|standoff|stand-off", 1),
            (r"washer", 1),
            (r"\bm3\b.{0,80}screw|screw.{0,120}\bm3\b", 3),
            (r"m3.{0,60}nut", 1),
            (r"socket head|socket cap|machine screw|mach screw|hex head bolts", 1),
        ],
        {"140": 2, "2612": 0, "2613": 0},
    ),
    "a03": (
        [
            (r"3d pen,|printing pen|nozzle", 0),
            (r"cleaning", 1),
            (r"1\.75.{0,80}\bpla\b|\bpla\b.{0,80}1\.75", 3),
            (r"\bpla\b", 2),
            (r"filament", 1),
        ],
        {},
    ),
    "a04": (
        [
            (r"cleaning", 1),
            (r"(\b3 ?mm|2\.85 ?mm|3\.00 ?mm).{0,80}\babs\b|\babs\b.{0,80}(\b3 ?mm|2\.85 ?mm|3\.00 ?mm)", 3),
            (r"\babs\b.{0,80}1\.75|1\.75.{0,80}\babs\b", 1),
            (r"\babs\b", 2),
            (r"\b3 ?mm|2\.85", 1),
        ],
        {},
    ),
    "a05": (
        [
            (r"mug|syringe", 0),
            (r"beaker", 1),
        ],
        {"1792": 3, "3349": 3, "2240": 2, "2404": 2, "2825": 2, "3618": 2, "2097": 2, "1087": 2},
    ),
    "a06": (
        [
            (r"3d printer|wash bottle|buffer|separating", 0),
            (r"flask", 1),
        ],
        {"3093": 3, "1086": 2, "2241": 2, "3883": 2},
    ),
    "a07": (
        [
            (r"primer|hinge", 0),
            (r"liquid", 1),
            (r"(3m|scotch|tartan).{0,80}electrical ta|electrical tape.{0,40}(3m|scotch)", 3),
            (r"(3m|scotch).{0,60}(splicing|mastic|friction)", 2),
            (r"electrical tape", 2),
            (r"3m|scotch", 1),
            (r"tape", 1),
        ],
        {},
    ),
    "a08": (
        [
            (r"thread ?lock", 3),
            (r"loctite", 1),
        ],
        {},
    ),
    "a09": (
        [
            (r"hatchbox.{0,40}petg", 3),
            (r"petg", 2),
            (r"hatchbox", 1),
        ],
        {"430": 1},
    ),
    "a10": (
        [
            (
                r"connector|terminal|lugs|staple|rope|cable,|"
                r"aircraft|sleeve|thimble|clip|scotchlok|safety wire",
                0,
            ),
            (r"22 ?awg.{0,40}(hook-?up|stranded|solid)", 3),
            (r"\b22 ?awg", 2),
            (r"wire", 1),
        ],
        {},
    ),
    "a11": (
        [
            (r"grease fitting|push in connectors", 0),
            (r"gauge|regulator|valve|\btap\b", 1),
            (r"1/4.{0,6}npt|npt.{0,12}1/4|1/4 ?fnpt|1/4 x 1/4 x 1/4", 3),
            (r"fitting|plug|coupler|nipple|adapter|bushing", 1),
        ],
        {},
    ),
    "a12": (
        [
            (r"tek screws|washer head|hex nuts|sheet|\brod\b|wire|gauge|machine screw kit", 0),
            (r"lock washer|nylon|fiber|danco|bolts nuts washers", 1),
            (r"stainless.{0,60}washer|washer.{0,60}stainless|18-8.{0,40}washer|304.{0,30}washer", 3),
            (r"washer", 2),
        ],
        {},
    ),
    "a13": (
        [
            (r"knob", 1),
            (r"thermistor|ntc|gold|acid", 0),
            (r"assort|kit|value", 2),
            (r"\bb?10 ?k\b.{0,60}potentiometer|potentiometer.{0,60}\bb?10 ?k\b", 3),
            (r"potentiometer", 1),
            (r"resistor", 1),
        ],
        {"4210": 2, "3706": 2},
    ),
    "a14": (
        [
            (r"converter", 1),
            (r"power supply|power su\b", 2),
        ],
        {"3758": 0},
    ),
    "a15": (
        [
            (r"filter paper|housing|felt filter", 0),
            (r"shop.?vac.{0,80}(filter|foam sleeve)|(filter|foam sleeve).{0,40}shop.?vac", 3),
            (r"filter", 1),
            (r"shop.?vac", 1),
        ],
        {"802": 2},
    ),
    "a16": (
        [
            (r"gorilla supply|gripper|carts", 0),
            (r"gorilla.{0,40}tape|gorilla 6100101", 3),
            (r"duct tape", 2),
            (r"gorilla", 1),
        ],
        {},
    ),
    "a17": (
        [
            (r"staple|linear|rail|shaft|v block|balls\b|pillow|lazy susan|bushing|clamping", 0),
            (r"\b608", 3),
            (r"bearing", 1),
        ],
        {"2966": 0},
    ),
    "a18": (
        [
            (r"clamp meter|current probe|clamp-on adaptor|hose coupling|8-foot hose", 0),
            (r"assortment|make-a-clamp", 2),
            (r"clamp", 1),
        ],
        {"39": 3, "396": 3, "1105": 3, "1196": 3, "1512": 2},
    ),
    "a19": (
        [
            (r"replacement brush head", 0),
            (r"sonicare", 3),
            (r"electric|rechargeable|sonic|panasonic", 2),
            (r"toothbrush|spinbrush", 1),
        ],
        {"2478": 1},
    ),
    "a20": (
        [
            (r"pipe clamp", 0),
            (r"connector", 1),
            (r"k.?type.{0,60}thermometer|thermometer.{0,80}k.?type|k/j", 2),
            (r"k.?type|type k", 3),
            (r"thermocouple", 1),
        ],
        {},
    ),
}
# fmt: on


def rules_of(query_id: str) -> Judgment:
    """The rules of ``query_id``, following a typo query to the keyword query it misspells."""
    entry = RULES[query_id]
    while isinstance(entry, str):
        entry = RULES[entry]
    return entry


def grade(query_id: str, item_id: str, title: str) -> int:
    """The grade 0..3 of ``item_id`` (with ``title``) for ``query_id``."""
    rules, overrides = rules_of(query_id)
    if item_id in overrides:
        return overrides[item_id]
    text = title.lower()
    for pattern, value in rules:
        if re.search(pattern, text):
            return value
    return 0


def read_queries(path: Path) -> dict[str, tuple[str, str]]:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    return {r[0]: (r[1], r[2]) for r in rows[1:] if r}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=Path, default=POOLS)
    parser.add_argument("--queries", type=Path, default=HERE / "queries.tsv")
    parser.add_argument("--out", type=Path, default=HERE / "qrels.txt")
    parser.add_argument("--show", nargs="*", help="print these queries' pools with grades and exit")
    args = parser.parse_args()
    queries = read_queries(args.queries)
    missing = [q for q in queries if q not in RULES]
    if missing:
        raise SystemExit(f"no judging rules for {', '.join(missing)}")
    with args.pools.open(encoding="utf-8") as f:
        pools = list(csv.DictReader(f, delimiter="\t"))
    graded = [(row, grade(row["query_id"], row["item_id"], row["title"])) for row in pools]
    if args.show is not None:
        for row, g in graded:
            if row["query_id"] in args.show:
                leaf = row["categories"].split(" > ")[-1]
                print(
                    f"{row['query_id']} {g} {row['item_id']:>5} {row['members']:<4} "
                    f"{row['title'][:90]} | {leaf}"
                )
        return
    order = {q: i for i, q in enumerate(queries)}
    graded.sort(key=lambda rg: (order[rg[0]["query_id"]], int(rg[0]["item_id"])))
    with args.out.open("w", encoding="utf-8") as f:
        for row, g in graded:
            f.write(f"{row['query_id']} 0 {row['item_id']} {g}\n")
    report(queries, graded)


def report(queries: dict[str, tuple[str, str]], graded: list[tuple[dict[str, str], int]]) -> None:
    """Counts per kind, judged and relevant items per query, and what the non-BM25 pool members added."""
    kinds = Counter(kind for kind, _ in queries.values())
    judged: Counter[str] = Counter()
    relevant: Counter[str] = Counter()
    grades: Counter[int] = Counter()
    found_by: dict[str, Counter[str]] = defaultdict(Counter)
    for row, g in graded:
        kind = queries[row["query_id"]][0]
        judged[row["query_id"]] += 1
        grades[g] += 1
        if g >= 2:
            relevant[row["query_id"]] += 1
            members = row["members"]
            keys = ["bm25" if "a" in members else "not bm25"]
            if "j" not in members and set(members) & {"e", "f"}:
                keys.append("semantic round")  # judged first in the second round (members e/f)
            for key in keys:
                found_by[kind][key] += 1
                found_by["all"][key] += 1
    n = len(queries)
    print(f"queries: {n} ({', '.join(f'{k} {v}' for k, v in kinds.items())})")
    print(
        f"judged pairs: {sum(judged.values())}, per query: min {min(judged.values())}, "
        f"mean {sum(judged.values()) / n:.1f}, max {max(judged.values())}"
    )
    print(f"grades: {dict(sorted(grades.items()))}")
    print(
        f"relevant (grade >= 2) per query: min {min(relevant[q] for q in queries)}, "
        f"mean {sum(relevant.values()) / n:.1f}, max {max(relevant.values())}"
    )
    for kind in [*kinds, "all"]:
        c = found_by[kind]
        total = c["bm25"] + c["not bm25"]
        print(
            f"{kind:>9}: relevant {total}, not in BM25's top 20: {c['not bm25']} "
            f"({c['not bm25'] / total:.1%}); added by the second (semantic) round: {c['semantic round']}"
        )


if __name__ == "__main__":
    main()
