"""English word pools (merged into `fillers.POOLS`)."""

from __future__ import annotations

from services.tns.ml.templates.family import pool

EN_POOLS: dict[str, tuple[str, ...]] = {
    "en_item": pool(
        """
        denim jacket / Nintendo Switch / iPhone 13 / stroller / electric kettle / puffer jacket /
        Pokemon cards / rice cooker / yoga mat / video game bundle / espresso machine / kids clothes lot /
        manga box set / wireless earbuds / desk lamp / air fryer / road bike / dinner plate set / plush toy /
        hair dryer / vintage band tee / board game
        """
    ),
    "en_lux": pool(
        """
        wallet / shoulder bag / tote bag / watch / necklace / sneakers / belt / key pouch / sunglasses /
        backpack / bracelet / card holder / crossbody bag / scarf
        """
    ),
    "en_desc": pool(
        """
        Thanks for looking! / Used a few times, no visible scratches or stains. /
        Stored at home, so minor wear is possible. / Selling because it no longer fits. /
        Moving out, decluttering everything. / Brand new with tags. /
        What you see in the photos is what you get. / Box has a small dent. / Smoke-free, pet-free home. /
        Tested and working. / Bought it last spring. / Will pack carefully. / Measurements are approximate. /
        Pre-owned, please check the photos before buying.
        """
    ),
    "en_greet": pool(
        """
        Hi / Hello / Hey / Hi there / Hey there / Good morning / Thanks for your purchase / Hello again
        """
    ),
    "en_bank": pool(
        """
        my bank account / my Chase account / my checking account / my Bank of America account /
        my Wells Fargo account / my savings account / my account at Barclays / my HSBC account
        """
    ),
    "en_payapp": pool(
        """
        Venmo / Zelle / Cash App / PayPal friends and family / PayPal F&F / Western Union / Apple Cash /
        Wise
        """
    ),
    "en_line": pool(
        """
        WhatsApp / Telegram / Snapchat / Signal / LINE / WeChat / Kik
        """
    ),
    "en_sns": pool(
        """
        Instagram / IG / Facebook / Twitter / TikTok / Discord / Telegram
        """
    ),
    "en_area": pool(
        """
        the mall / Union Station / downtown / the Starbucks on Main St / the train station / my office /
        the Target parking lot
        """
    ),
    "en_drug": pool(
        """
        weed / cannabis / THC carts / MDMA / cocaine / meth / shrooms / LSD tabs / ketamine / THC gummies /
        molly / kush
        """
    ),
    "en_weapon": pool(
        """
        handgun / 9mm ammo / stun gun / brass knuckles / switchblade / butterfly knife / crossbow / taser /
        ghost gun kit / suppressor / pistol / AR-15 lower
        """
    ),
    "en_animal": pool(
        """
        kitten / puppy / hamster / bunny / parakeet / hedgehog / tortoise / ferret / bearded dragon /
        guinea pig / corn snake
        """
    ),
    "en_rx": pool(
        """
        Xanax / Adderall / oxycodone / antibiotics / Valium / prescription sleeping pills / Ozempic pens /
        Viagra / codeine syrup / Vicodin / Percocet
        """
    ),
    "en_gadget": pool(
        """
        iPhone 14 / iPad / AirPods Pro / MacBook Air / Apple Watch / Galaxy S23 / road bike / DSLR camera /
        Nintendo Switch / power drill
        """
    ),
    "en_food": pool(
        """
        chocolate bars / protein powder / instant noodles / canned tuna / granola / baby formula /
        coffee beans / snack box / cereal / honey / energy drinks / tea bags / rice crackers / beef jerky /
        emergency rations
        """
    ),
    "en_insult": pool(
        """
        idiot / moron / loser / clown / scammer / piece of trash / dumbass / lowlife / jerk / retard /
        pathetic loser / f***ing idiot / imbecile / scumbag
        """
    ),
    "en_nationality": pool(
        """
        Chinese / Mexicans / Indians / Africans / Muslims / immigrants
        """
    ),
    "en_copyword": pool(
        """
        replica / 1:1 replica / mirror quality / AAA grade copy / super fake / dupe /
        UA (unauthorized authentic) / fake / knockoff / rep
        """
    ),
    "en_ship": pool(
        """
        USPS / UPS / FedEx / Royal Mail / USPS Priority / the prepaid label
        """
    ),
    "en_apparel": pool(
        """
        sweater / jeans / dress / coat / skirt / T-shirt / jacket / blouse / hoodie / cardigan
        """
    ),
    "en_event": pool(
        """
        stadium tour / arena show / Taylor Swift concert / World Series game / Broadway show /
        music festival
        """
    ),
}
