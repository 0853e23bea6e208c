"""English families about what is sold: prohibited items, counterfeits, expired food.
Each family is one voice and covers every sub-concept of its policy.
"""

# ruff: noqa: E501 - template data: one template a line keeps them greppable (Japanese characters
# count double toward the line length).

from __future__ import annotations

from services.tns.ml.templates.family import COMMENT, LISTING, MESSAGE, Family, chat, listing

P, C, EXP = ("prohibited_item",), ("counterfeit",), ("expired_food",)
_GOODS = """
    Other
    Sports & Outdoors
    Electronics
"""

FAMILIES: tuple[Family, ...] = (
    # --- prohibited_item --------------------------------------------------------
    listing(
        "en.prohibited.listing_terse",
        P,
        """
            {en_drug} {n}g || {en_drug}, {n}g. {|Discreet shipping.|Ships today.|}
            {en_drug} || Got «{en_drug}». {n}g minimum.
            {en_weapon} self defense || {en_weapon} for self defense, {|never used|works perfectly|}.
            Real {en_weapon} || Real {en_weapon}, {n} rounds included.
            {en_animal} {n} weeks old || {n} week old {en_animal}, {|vaccinated|friendly|}. Pickup only. || Pet Supplies
            {en_rx} {n} pills || {en_rx}, {n} pills, {|no prescription needed|sealed|}.
            {en_gadget} iCloud locked || Found {en_gadget}, {|activation locked|owner unknown|}.
            {en_event} tickets || {en_event} tickets, above face value.
            Cash ${n}00 || ${n}00 cash, pay by card.
        """,
        _GOODS,
        prices=(20, 600),
        rows=75,
    ),
    listing(
        "en.prohibited.listing_polite",
        P,
        """
            {en_drug} || Thank you for looking. This is imported {en_drug}; if it is your first time, please start with a small amount.
            Premium {en_drug} || Offering home grown {en_drug}, carefully packaged so the contents cannot be identified.
            {en_weapon} || I bought this {en_weapon} for self defense. It is {|stronger than the legal limit|fully functional|}. Serious buyers only, please.
            Baby {en_animal} || Our {en_animal} had a litter and we are rehoming the babies. {|Very people friendly.|} We ship live animals by air. || Pet Supplies
            {en_rx} || I have some {en_rx} left over from my prescription, {n} pills in total.
            {en_gadget} || I brought this {en_gadget} home from the office. It is company property but has never been used.
            {en_event} tickets || Selling my {en_event} tickets; the price is above face value, thank you for understanding.
            Game account || Selling a fully levelled game account. Login details will be sent after purchase. || Books
        """,
        _GOODS,
        prices=(20, 800),
        rows=75,
    ),
    listing(
        "en.prohibited.listing_coded",
        P,
        """
            Herbal blend - strong || «Legal high» herbal blend, {|hits fast|very strong|}. Use at your own risk.
            Party favors {n}g || You know what this is. Party favors, {n}g, {|DM for menu|}.
            {|Ice|Crystal|Snow|} {n}g || «Snow» {n}g, {|pure|uncut|}. If you know, you know.
            {en_weapon} - fires || {en_weapon}, {|actually fires|fully functional|}. Packed so it won't get flagged.
            Live {en_animal} || Live {en_animal} looking for a new home, {|food included|cage included|}. Serious buyers only. || Pet Supplies
            {|Sleep aids|Study pills|Diet pills|} || {en_rx}, no script needed. {|Works great.|}
            {en_gadget} cheap || Honestly it's «stolen» but it works fine. {en_gadget}, first come first served.
            {en_gadget} no box || {en_gadget}, no box, no receipt, {|don't ask where it came from|it fell off a truck|}.
        """,
        _GOODS,
        prices=(20, 600),
        rows=75,
    ),
    chat(
        "en.prohibited.comment_buyer",
        P,
        """
            is the {en_weapon} real? {|does it fire?|}
            is the {en_animal} still available? {|I'd love to take it home|}
            can I buy the {en_rx} without a prescription?
            how many {en_rx} pills do you have?
            how pure is the {en_drug}?
            got any «{en_drug}» left? need {n}g
            is the {en_gadget} locked? since you found it
            I'll pay over face value for the tickets
        """,
        kinds=(COMMENT,),
        rows=75,
    ),
    chat(
        "en.prohibited.message_deal",
        P,
        """
            I'll vacuum seal the {en_drug} so nobody can smell it
            sending the ammo for the {en_weapon} separately
            the {en_animal} ships live tomorrow, {|it's healthy|food included|}
            {en_rx} comes in the blister pack, {|you don't need a script|keep it between us|}
            {en_drug} {n}g for {en_price}, {|same as last time|cash ready?|}
            it's a found {en_gadget} so {|no box|it stays locked|}
            I'll transfer the ticket account to you, {|it's a resale|keep the name on it|}
        """,
        kinds=(MESSAGE,),
        rows=75,
    ),
    # --- counterfeit ------------------------------------------------------------
    listing(
        "en.counterfeit.listing_terse",
        C,
        """
            {brand} {en_lux} {en_copyword} || {brand} {en_lux}, «{en_copyword}». {|Box included.|Dust bag included.|}
            {en_copyword} {brand} {en_lux} || «{en_copyword}», {|not authentic|top grade|}.
            {brand} {en_lux} cheap || Not authentic, that's why it's cheap. {brand} {en_lux}.
            {brand} {en_lux} copy || {brand} {en_lux} «copy», {|highest grade|looks real|}.
            {brand} watch {en_copyword} || {brand} watch, «{en_copyword}», Asian movement.
        """,
        """
            Women
            Men
        """,
        prices=(20, 300),
    ),
    listing(
        "en.counterfeit.listing_polite",
        C,
        """
            {brand} {en_lux} || Thanks for looking. This is a «{en_copyword}» of the {brand} {en_lux}; {|you cannot tell it from the real thing|the stitching is perfect|}.
            {brand} {en_lux} top quality || A faithful reproduction of the {brand} {en_lux}. It is not authentic, so please buy only if you are fine with that.
            {brand} {en_lux} || It won't pass authentication, but {|the build quality is solid|nobody will notice|}. {brand} {en_lux}.
            {brand} {en_lux} factory || A factory «overrun» from the same plant that makes {brand}; no authenticity card.
        """,
        """
            Women
            Men
        """,
        prices=(20, 300),
    ),
    listing(
        "en.counterfeit.listing_euphemism",
        C,
        """
            {brand} inspired {en_lux} with logo || {brand} logo {en_lux}, made overseas. Think of it as unbranded.
            Unbranded {brand} {en_lux} || Unbranded but same design and logo as {brand}. {|Don't mind? Go ahead.|}
            {brand} {en_lux} 1:1 || 1:1 {brand} {en_lux}, {|serial number included|with logo|}.
            {brand} {en_lux} UA || UA {brand} {en_lux}, {|from the factory|not from the store|}, great quality.
        """,
        """
            Women
            Men
        """,
        prices=(15, 250),
    ),
    chat(
        "en.counterfeit.comment_seller",
        C,
        """
            yes it's a «{en_copyword}», {|sorry|but good quality|}
            it's a {en_copyword} but {|honestly the quality is great|you can't tell|}
            I have more {brand} {en_copyword}s if you're interested
            not authentic but {|the serial number is copied too|it's a 1:1 copy|}
            it's not real, that's why it's this price
        """,
        kinds=(COMMENT,),
    ),
    chat(
        "en.counterfeit.message_deal",
        C,
        """
            it's a {en_copyword} so no box, is that ok?
            I'll pack the {brand} fake so customs won't notice
            how was the last {en_copyword}? new {brand} ones just came in
            please don't send it for authentication, it's a «copy»
        """,
        kinds=(MESSAGE,),
    ),
    Family(
        "en.counterfeit.with_contact",
        (LISTING,),
        ("counterfeit", "offplatform_contact"),
        templates=(
            "{brand} {en_copyword}s || More {brand} {en_copyword}s available, message me on {en_line} {handle}",
            "{brand} {en_lux} {en_copyword} || {en_copyword} {brand} {en_lux}. Full catalog on my {en_sns}: {handle}",
            "{brand} {en_copyword} wholesale || Wholesale {en_copyword} {brand}, email {email}",
        ),
        categories=("Women", "Men"),
        rows=36,
    ),
    # --- expired_food -----------------------------------------------------------
    listing(
        "en.expired.listing_terse",
        EXP,
        """
            {en_food} - expired || «Expired» {en_food}, {|still sealed|cheap|}.
            {en_food} lot || {en_food}, expired {n} months ago.
            {en_food} x{n} || {n} packs of {en_food}, exp {en_past} (past date).
            {en_food} short dated || {en_food}, use by {|today|tomorrow|}.
        """,
        """
            Food
        """,
        prices=(3, 40),
    ),
    listing(
        "en.expired.listing_polite",
        EXP,
        """
            {en_food} bundle || Thanks for looking. Best before {en_past}; past the date but still perfectly edible.
            {en_food} || {en_food}. It is «expired» but unopened, so please buy if you don't mind.
            {en_food} || Only {n} days left before it expires, so please eat it soon.
            {en_food} clearance || Selling cheap because the {en_food} is close to its expiry date.
        """,
        """
            Food
        """,
        prices=(3, 40),
    ),
    chat(
        "en.expired.comment_qna",
        EXP,
        """
            the expiration date was {en_past}, {|a bit past but fine|still sealed though|}
            these are expired right? {|still ok with it|I'll buy anyway|}
            yes they're expired{|, I'll lower the price|}
            use by date is {|today|tomorrow|}, so only if you'll eat it right away
        """,
        kinds=(COMMENT,),
    ),
    chat(
        "en.expired.message_seller",
        EXP,
        """
            the {en_food} is {n} months past its date but I kept it in the {|fridge|pantry|}, should be fine
            forgot to mention the {en_food} is expired, sorry
            it's good until {en_past} so eat it soon
            the {en_food} expired {|yesterday|today|} so I gave you a discount
        """,
        kinds=(MESSAGE,),
    ),
    listing(
        "en.expired.listing_detailed",
        EXP,
        """
            {en_food} x{n} || Item: {en_food} x{n}¶Best before: {en_past}¶Condition: sealed (expired)
            {en_food} set || Product: {en_food}¶Expiry: passed on {en_past}¶Storage: room temperature
            {en_food} || - {en_food}¶- Use by: {|today|tomorrow|}¶- Eat soon
        """,
        """
            Food
        """,
        prices=(3, 40),
    ),
)
