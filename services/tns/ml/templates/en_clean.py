"""English clean families, one voice each, each covering many topics and the hard
negatives among them ("bank holiday", "brand-new Louis Vuitton with receipt",
"best before 2027-03", "knife sharpener", "no phone calls needed", "cash register toy").
"""

# ruff: noqa: E501 - template data: one template a line keeps them greppable (Japanese characters
# count double toward the line length).

from __future__ import annotations

from services.tns.ml.templates.family import COMMENT, MESSAGE, Family, chat, listing

CLEAN: tuple[str, ...] = ()
_ANY = """
    Women
    Men
    Home
    Toys & Collectibles
    Electronics
"""

FAMILIES: tuple[Family, ...] = (
    listing(
        "en.clean.listing_terse",
        CLEAN,
        """
            {casual_brand} {en_apparel} size {size} || {casual_brand} {en_apparel}, size {size}. {|Worn twice.|Like new.|} || Women
            {brand} {en_lux} authentic || {brand} {en_lux}, authentic. {|Receipt included.|Authenticity card.|} || Women
            {en_gadget} || {en_gadget}, tested. {|Factory reset.|Unlocked.|} || Electronics
            {en_food} best before {en_future} || {en_food}, sealed, best before {en_future}. || Food
            {en_food} || {en_food}, {n}+ months before the expiry date. || Food
            {brand} {en_lux} || {brand} {en_lux}. {en_desc} || Women
            {brand} {en_lux} used || {brand} {en_lux}, {|some wear|corner scuffs|}. || Men
            {|Knife sharpener|Whetstone|Honing rod|} || {|Knife sharpener|Whetstone|}, {|barely used|new|}. || Home
            Cat {|toy|scratcher|carrier|} || Cat {|toy|scratcher|carrier|} my kitten outgrew. || Pet Supplies
            Cash register toy || Cash register toy with pretend money. || Toys & Collectibles
            {|Trash can|Copy paper 500 sheets|Cordless phone|} || {|Trash can with lid|Ream of copy paper|Cordless home phone|}. {|Unused.|} || Home
            {|Pill organizer|First aid kit|} || {|Weekly pill organizer|Empty first aid kit|}. || Home
            {|Ticket holder|Tour merch|} || {|Ticket holder|Tour merch|} from the {en_event}. || Toys & Collectibles
            Official replica jersey {size} || Officially licensed replica jersey, size {size}. || Sports & Outdoors
            {|Water gun|Gunmetal watch|} || {|Kids' water gun|Gunmetal finish watch|}. || Toys & Collectibles
        """,
        _ANY,
        prices=(5, 400),
        rows=280,
    ),
    listing(
        "en.clean.listing_polite",
        CLEAN,
        """
            {casual_brand} {en_apparel} || {en_desc} {casual_brand} {en_apparel} I bought {|last year|a few years ago|}. {en_desc} || Women
            Brand-new {brand} {en_lux} with receipt || Brand-new {brand} {en_lux} with receipt, bought at the {|flagship store|department store|boutique|}. {|Genuine, not a replica.|} || Women
            {brand} {en_lux} authenticated || Authenticated by a third party; {|original box and dust bag included|receipt included|}. {en_desc} || Men
            {en_gadget} || {en_desc} Comes with a {|phone case|charging cable|screen protector|}. {|Phone number removed.|} || Electronics
            {en_food} || {en_food}, with {|over six months|more than a year|{n} months|} left before the expiry date. || Food
            {brand} {en_lux} || {en_desc} {brand} {en_lux}, {|a gift from my mom|a treat to myself|}. {en_desc} || Women
            {brand} {en_lux} great condition || {brand} {en_lux} with plenty of life left. {en_desc} || Men
            {|Hamster|Rabbit|Bird|} cage || {|Hamster|Rabbit|Bird|} cage, no animal included. {en_desc} || Pet Supplies
            {|Death metal band tee|Killer Queen vinyl|Horror movie poster|} || {|Death metal band tee|Killer Queen vinyl|Horror movie poster|}. {en_desc} || Toys & Collectibles
            {|Mailbox|Phone stand|Die-cast car|} || {|Wall mailbox|Phone stand|Die-cast model car|}. {en_desc} || Home
            Medicine cabinet || Medicine cabinet with mirror, empty. {en_desc} || Home
            Beach shells || Shells I found on the beach, cleaned, great for crafts. || Handmade
            {|Stroller|Baby carrier|} || Selling because my kid outgrew it. {en_desc} || Kids
            Replica kit {|2023|2024|} || Replica kit from the club store, {|tags attached|worn once|}. {en_desc} || Sports & Outdoors
        """,
        _ANY,
        prices=(5, 3000),
        rows=280,
    ),
    listing(
        "en.clean.listing_detailed",
        CLEAN,
        """
            {casual_brand} {en_apparel} || Brand: {casual_brand}¶Size: {size}¶Condition: no stains
            {brand} {en_lux} || - Brand: {brand}¶- Bought at: {|the boutique|a department store|}¶- Includes: {|box, dust bag|receipt|}
            {en_food} set || Item: {en_food} x{n}¶Best before: {en_future}¶Condition: sealed
            {brand} {en_lux} || Brand: {brand}¶Item: {en_lux}¶Condition: {|some wear|no visible flaws|}
            {en_item} || Item: {en_item}¶Payment: {|in-app only|card or balance|}¶Shipping: {en_ship}
            {en_gadget} || Item: {en_gadget}¶Condition: tested, works¶Accessories: {|box|cable|none|}
            {|Knife sharpener|Whetstone|Knife block|} || - {|Knife sharpener|Whetstone|Knife block|}¶- Used {n} times¶- {|Pre-owned|New|}
            {|Trash can|Copy paper|Phone stand|} || Item: {|Trash can|Copy paper|Phone stand|}¶Size: {|13 gal|letter|small|}¶Condition: great
            {|Picture books|Textbooks|} || Books: {n}¶Condition: {|no writing|some sun fading|}
            {|Dog collar|Cat bed|Aquarium kit|} || Item: {|Dog collar|Cat bed|Aquarium kit (no fish)|}¶Size: {size}
        """,
        _ANY,
        prices=(5, 600),
        rows=260,
    ),
    listing(
        "en.clean.listing_casual",
        CLEAN,
        """
            {casual_brand} {en_apparel} || super comfy {casual_brand} {en_apparel}, size {size}! {|barely worn|like new|} {{emoji}|} || Women
            {brand} {en_lux} || my bf got me this {brand} {en_lux} from the actual store, {|have the box|have the receipt|} {{emoji}|} || Women
            {en_gadget} || upgraded so selling my {en_gadget}! {|works fine|already reset|} || Electronics
            {en_food} || got too much {en_food}, good till {en_future} || Food
            {brand} {en_lux} || {brand} {en_lux}, {|barely used|was my fave|} but letting it go || Women
            {en_item} || {en_item} still works great! {|pay in the app pls|card payment is fine|} || Electronics
            {|knife sharpener|whetstone|} || this {|knife sharpener|whetstone|} actually works lol, {|used twice|} || Home
            kitten toys || my kitten ignored all these toys {{emoji}|} take them! || Pet Supplies
            toy cash register || my kid's old toy cash register, play money included || Toys & Collectibles
            {|trash can|copy paper|old phone|} || moving out, don't need this {|trash can|copy paper|cordless phone|} anymore || Home
            {|ticket holder|tour merch|} || {|ticket holder|merch|} from the {en_event}! {|switched fandoms|} || Toys & Collectibles
            replica jersey || fan replica jersey, size {size}, {|worn to one game|never worn|} || Sports & Outdoors
            {|pill box|first aid pouch|} || handmade {|pill box|first aid pouch|} {{emoji}|} || Handmade
            beach glass || sea glass I found on the beach, so pretty || Handmade
        """,
        _ANY,
        prices=(5, 500),
        rows=300,
    ),
    chat(
        "en.clean.comment_buyer",
        CLEAN,
        """
            {en_greet}! Would you take {en_price}?
            Can I buy it right away?
            Is the price negotiable? {|Thanks!|}
            {en_greet}, would you bundle this with your other listing?
            How does it fit? I'm usually a {size}.
            Does it come with the {|box|charger|manual|}?
            Is this authentic? {|Just want to double check.|}
            When does it expire?
            Is there any phone support or warranty left?
            Can you ship with {en_ship}?
            Is the {|price|bag|jacket|} still available?
            What are the measurements of the {|ticket holder|cage|trash can|}?
            Would this work for a {|kitten|puppy|}?
            Did you buy the {brand} at the store?
            How soon can you ship?
            Could you do {en_price}? {{emoji}|}
            Can I pay with my points?
            Is the {brand} {en_lux} still available?
            How long until the expiry date?
        """,
        kinds=(COMMENT,),
        rows=210,
    ),
    chat(
        "en.clean.comment_seller",
        CLEAN,
        """
            Thanks for asking! {en_price} works for me.
            Yes, it's authentic{|, receipt included|, bought at the store|}.
            Best before date is {en_future}.
            Sorry, I only do transactions through the app.
            I can't share contact info, {|sorry|it's against the rules|}.
            Please pay through the app{|, thanks|}!
            No phone calls needed, just message me here.
            The warranty {|expired|has run out|} but it works perfectly.
            Coupon expired, so I lowered the price.
            Yes, it's still available{|!|.|}
            I'll ship with {en_ship}.
            It fits a {|kitten|small dog|} fine.
            Just the {|cage|tank|}, no animal.
            I can go down to {en_price}.
            Any payment option in the app works for me.
            It has {n}+ months before the expiry date.
        """,
        kinds=(COMMENT,),
        rows=210,
    ),
    chat(
        "en.clean.message_seller",
        CLEAN,
        """
            Thanks for your purchase! Shipping {|tomorrow|today|this weekend|}.
            Shipped with {en_ship}, tracking is in the app.
            Delayed a day because of the bank holiday, sorry!
            Post office is closed for the holiday, it'll go out {|Monday|Tuesday|}.
            Shipping is anonymous, so no need to share your address.
            Thanks for the rating! Hope you enjoy it.
            I'll keep you posted here.
            Call the manufacturer for warranty questions, details are in the manual.
            The {|ticket holder|merch|} is going out with {en_ship}.
            Best before is {en_future}, so no worries.
            Check the app for the shipping notice.
            Packing it now, will ship soon.
        """,
        kinds=(MESSAGE,),
        rows=210,
    ),
    chat(
        "en.clean.message_buyer",
        CLEAN,
        """
            Payment went through in the app, thanks!
            Paid with my credit card, {|let me know when it ships|}.
            Used my balance to pay, {|thank you|}.
            I transferred my sales balance to my bank account, all good.
            Payment completed{|!|.|}
            Got it today, {|great packaging|super fast shipping|}, thank you!
            Left you a rating {{emoji}|}
            Sorry for the slow reply, {|work has been crazy|I was sick|}.
            My {|kitten|dog|} loves it!
            I'll take good care of the {|ticket holder|merch|}.
            Glad the {brand} {en_lux} is authentic, thanks.
            Hasn't arrived yet, has it shipped?
            Payment done, {|thanks|looking forward to it|}.
        """,
        kinds=(MESSAGE,),
        rows=190,
    ),
    chat(
        "en.clean.chat_casual",
        CLEAN,
        """
            This is a killer deal{|!|}
            insanely cheap, love it {{emoji}|}
            these sneakers are sick{|!|}
            stupid cute, buying now
            deadstock pair, {|wow|nice|}
            the boss fight in this game is brutal lol
            got it!! thank you {{emoji}|}
            omg I've wanted this forever
            my passport expired lol so selling my travel stuff
            my kitten is so cute I could die {{emoji}|}
            got concert tickets!! {|so excited|can't wait|}
            is the price the same for two?
            that last boss is a killer lol
            is the {brand} {en_lux} still available? {|want it|}
            paid!! {{emoji}|}
            expiry date is ages away, all good
        """,
        rows=190,
    ),
)
